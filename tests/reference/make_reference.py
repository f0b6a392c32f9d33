"""Write tests/reference/pre_refactor.json: every scenario of tests/reference/scenarios.py, run on the
CPU with one thread. Run it from the repository root only when a change of results is intended
(the file records what the code computes; tests/test_reference.py holds the code to it):

    python tests/reference/make_reference.py
"""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenarios import SCENARIOS  # noqa: E402  (beside this script)

OUT = Path(__file__).with_name("pre_refactor.json")


def main() -> None:
    torch.set_num_threads(1)
    ref = {"_meta": {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                     "threads": 1}}
    for fn in dict.fromkeys(SCENARIOS.values()):  # a function may record several scenarios
        ref.update(fn())
    OUT.write_text(json.dumps(ref, indent=0, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB, {len(ref) - 1} scenarios)", file=sys.stderr)


if __name__ == "__main__":
    main()
