"""scripts/setup_venv.sh falls back to pip, in one line, when uv cannot reach the registry (a proxy
whose certificate only the system's store holds: uv's own store rejects it, pip gets through)."""
import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from conftest import REPO

FAKE_UV = '''import sys
if "--version" in sys.argv:
    print("uv 0.0.0 (stand-in)")
    raise SystemExit(0)
sys.stderr.write("error: Request failed after 3 retries\\n  Caused by: invalid peer certificate: UnknownIssuer\\n")
raise SystemExit(2)
'''


def _wheel(directory: Path) -> Path:
    """A one-module pure-Python wheel, so that pip installs it with no index and no network."""
    path = directory / "antlm_probe_pkg-0.1-py3-none-any.whl"
    info = "antlm_probe_pkg-0.1.dist-info"
    files = {
        "antlm_probe_pkg.py": "VALUE = 42\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: antlm-probe-pkg\nVersion: 0.1\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def test_uv_certificate_failure_falls_back_to_pip(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The new venv sees this interpreter's packages (pip, torch) through a .pth file: no downloads.
    target = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    (target / "outer.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    fake = tmp_path / "fake"
    (fake / "uv").mkdir(parents=True)
    (fake / "uv" / "__main__.py").write_text(FAKE_UV)
    (fake / "uv" / "__init__.py").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env["PYTHONPATH"] = str(fake)
    result = subprocess.run(["bash", str(REPO / "scripts" / "setup_venv.sh"), str(venv), "--no-index", "--no-deps",
                             str(_wheel(tmp_path))], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("setup:")]
    assert len(notes) == 1 and "UnknownIssuer" in notes[0] and notes[0].endswith("installing with pip instead"), result.stderr
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import antlm_probe_pkg as m; print(m.VALUE)"],
                           capture_output=True, text=True, env=env)
    assert check.stdout.strip() == "42", check.stderr
