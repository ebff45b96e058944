"""A seeded random sample of mutmut's mutants, for an estimate of the mutation score in an hour instead of a day.

Usage: tools/mutation_sample.py [--size N] [--seed S] [--children N] [--out FILE]   (one mutant name a line)

It has mutmut write its mutants (into mutants/, as `mutmut run` does first) and draws a simple random sample of their
names, the same for the same seed and code. `make mutate-sample` runs those with `mutmut run NAME...` and reports the
score over the sample with its 95 % interval (tools/mutation_report.py --sample): a sample of 400 bounds the score
within about ±3 points. Generation goes through mutmut's own functions, in the order `mutmut run` calls them; the lock
pins mutmut, so a release that moves them fails here, loudly, not in a silent mis-sample.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterable
from pathlib import Path


def draw(names: Iterable[str], size: int, seed: int) -> list[str]:
    """`size` names picked at random without replacement (all of them when there are fewer), sorted."""
    population = sorted(set(names))
    return sorted(random.Random(seed).sample(population, min(size, len(population))))


def generate(children: int) -> list[str]:
    """Every mutant's name, after mutmut has written the mutants (only files changed since the last run are redone)."""
    from mutmut.__main__ import create_mutants, store_lines_covered_by_tests
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.trampoline import set_mutant_under_test
    from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths, walk_mutatable_files

    set_mutant_under_test("mutant_generation")
    copy_src_dir()
    copy_also_copy_files()
    setup_source_paths()
    store_lines_covered_by_tests()
    create_mutants(children)
    names: list[str] = []
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        names += data.exit_code_by_key
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--children", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("mutants/sample.txt"), help="not stdout: mutmut prints there")
    args = parser.parse_args(argv)
    sample = draw(generate(args.children), args.size, args.seed)
    args.out.write_text("".join(f"{name}\n" for name in sample))
    print(f"{len(sample)} mutants drawn (seed {args.seed}) into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
