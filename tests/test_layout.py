"""The users' trainer folder holds only the users' trainers, and looking them up never imports the benchmark."""
import os
import subprocess
import sys

from nnunetv2_reisoseg import trainer_dir
from nnunetv2_reisoseg.benchmark.environment import TRAINER_DIR, ext_trainer_path

PROBE = """
import sys
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
for name in ("nnUNetTrainerReIso", "nnUNetTrainerReIso_5epochs", "nnUNetTrainerReIsoSegNet"):
    assert recursive_find_trainer_class_by_name(name).__name__ == name
try:
    recursive_find_trainer_class_by_name("nnUNetTrainerReIsoBenchTiny")
    print("FOUND-BENCH")
except RuntimeError:
    print("no-bench")
print(sorted(m for m in sys.modules if m.startswith("nnunetv2_reisoseg.benchmark")))
"""


def test_user_trainer_path_has_no_benchmark(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet")}
    env.update(nnUNet_extTrainer=str(trainer_dir()), nnUNet_results=str(tmp_path))
    p = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines()[-2:] == ["no-bench", "[]"]
    assert not any("Bench" in f.name for f in trainer_dir().iterdir())


def test_benchmark_trainings_find_their_own_trainers(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet")}
    env.update(nnUNet_extTrainer=ext_trainer_path(str(tmp_path)), nnUNet_results=str(tmp_path))
    p = subprocess.run([sys.executable, "-c", "from nnunetv2.utilities.find_objects import "
                        "recursive_find_trainer_class_by_name as f; print(f('nnUNetTrainerReIsoBenchTiny').__name__)"],
                       env=env, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.splitlines()[-1] == "nnUNetTrainerReIsoBenchTiny", p.stderr[-2000:]
    assert env["nnUNet_extTrainer"].split(os.pathsep) == [str(TRAINER_DIR), str(tmp_path)]


# the layers of docs/ARCHITECTURE.md, top to bottom: a module imports only from the layers below its own
LAYERS = [{"__main__"}, {"cli"}, {"benchmark"}, {"evaluation", "volume", "data"}, {"training", "blockwise"},
          {"paper"}, {"method"}, {"io"}, {"errors", "progress", "__init__"}]


def _unit(module: str) -> str | None:
    """The subpackage (or top-level module) of the package that ``module`` names."""
    parts = module.split(".")
    if parts[0] != "nnunetv2_reisoseg":
        return None
    return "__init__" if len(parts) == 1 else parts[1]


def test_imports_point_down_the_layers():
    import ast
    from pathlib import Path

    import nnunetv2_reisoseg

    root = Path(nnunetv2_reisoseg.__file__).parent
    layer = {unit: i for i, units in enumerate(LAYERS) for unit in units}
    wrong = []
    for f in root.rglob("*.py"):
        rel = f.relative_to(root.parent).with_suffix("")
        me = _unit(".".join(p for p in rel.parts))
        assert me in layer, f"{f}: {me} is in no layer of docs/ARCHITECTURE.md"
        for node in ast.walk(ast.parse(f.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for target in filter(None, map(_unit, names)):
                if target != me and layer[target] <= layer[me]:
                    wrong.append(f"{rel} ({me}) imports {target}")
    assert not wrong, wrong
