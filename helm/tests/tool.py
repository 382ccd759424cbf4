"""The chart chores that are not tests: `--render` prints the manifests
exactly as `helm template` would (defaults, or values files merged over
them); `--write-readme` regenerates the README's values table."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import chart  # noqa: E402
import values_doc  # noqa: E402


def main(args):
    if args[:1] == ["--write-readme"]:
        print(values_doc.write_readme())
        return 0
    if args[:1] == ["--render"]:
        values = chart.defaults()
        for extra in args[1:]:
            values = chart.helm_merge(values, chart.load_yaml(extra))
        result = chart.render(values)
        for e in result.install_errors:
            print(f"# helm install would stop here: {e}", file=sys.stderr)
        sys.stdout.write(result.manifest())
        return 1 if result.install_errors else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
