from vitplast.cli import main

main()
