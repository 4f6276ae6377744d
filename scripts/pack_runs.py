"""Pack the finished tasks of a sweep folder so that a reproduction can continue in another sitting.

    python scripts/pack_runs.py SWEEP_DIR ARCHIVE.tar.gz

A task is finished when its folder ``DIR/<kind folder>/<id>/`` holds its kind's result file (``result.json``;
``plasticity.json`` for a plasticity analysis). The archive keeps each finished task's small files
(``config.json``, results, ``metrics.jsonl``, ``test_hits.npz``, tables) and leaves out weights
(``*.safetensors``, ``*.pt``), figures and lock files: what ``vitplast report`` and the resume of ``vitplast
reproduce`` read. Unfinished tasks are left out; they are re-run from their start. To continue::

    mkdir -p DIR && tar xzf ARCHIVE.tar.gz -C DIR
    vitplast reproduce --suite mini --model micro-long --out DIR   # the same options as the packed run
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

#: File name endings a packed task leaves out: weights, resume states, figures, locks.
SKIPPED = (".safetensors", ".pt", ".png", ".pdf", ".lock")


def finished_files(root: Path) -> list[Path]:
    """The files to pack, relative to ``root``: every file of a finished task's folder except :data:`SKIPPED`, in
    sorted order (so that an archive of the same runs has the same members)."""
    import vitplast.sweep.kinds  # noqa: F401  (registers the built-in kinds)
    from vitplast.sweep.task import kinds

    out: list[Path] = []
    for kind in kinds():
        for result in sorted(root.glob(f"{kind.subdir}/*/{kind.result_file}")):
            out.extend(p.relative_to(root) for p in sorted(result.parent.iterdir())
                       if p.is_file() and not p.name.endswith(SKIPPED))
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="the --out folder of `vitplast reproduce` or `vitplast sweep`")
    parser.add_argument("archive", type=Path, help="the .tar.gz to write")
    args = parser.parse_args(argv)
    files = finished_files(args.sweep_dir) if args.sweep_dir.is_dir() else []
    if not files:
        print(f"error: {args.sweep_dir} holds no finished task", file=sys.stderr)
        return 2
    tmp = args.archive.with_name(args.archive.name + ".part")
    with tarfile.open(tmp, "w:gz") as tar:
        for f in files:
            tar.add(args.sweep_dir / f, arcname=str(f), recursive=False)
    tmp.replace(args.archive)
    tasks = len({f.parent for f in files})
    print(f"{tasks} finished tasks, {len(files)} files -> {args.archive} ({args.archive.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
