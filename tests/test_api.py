"""The public API: ``import ocula`` gives the job functions, stays light, and no later import of a
job's package turns ``ocula.train`` or ``ocula.evaluate`` back into a package."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_api_functions_survive_importing_their_packages():
    out = _run("import ocula, ocula.train.job, ocula.evaluate.job, ocula.train.run; "
               "print(*(getattr(ocula, n).__module__ for n in ('train', 'evaluate', 'compare', 'predict', 'automl')), "
               "ocula.Run.__name__, ocula.Evaluation.__name__, ocula.Predictor.__name__)")
    assert out == ["ocula.api"] * 5 + ["Run", "Evaluation", "Predictor"]


def test_import_ocula_and_the_inference_path_load_no_training_stack():
    out = _run("import sys, ocula, ocula.inference, ocula.serve.app; "
               "print(sorted(m for m in ('torch', 'timm', 'onnxruntime', 'pandas', 'sklearn') if m in sys.modules))")
    assert out == ["[]"]
