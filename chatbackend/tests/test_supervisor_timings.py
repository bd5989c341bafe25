"""The supervisors wait longer than a shutdown can take (issue 10, #14): uvicorn's graceful timeout
plus the time GracefulShutdown gives open streams to save must be below every kill grace: the
Dockerfile's CMD with docker-compose.yml's stop_grace_period, and the README's Kubernetes spec.
The numbers are parsed from the files (the CMD's arguments, compose's YAML, README's YAML block)."""

import json
import re
import shlex
from pathlib import Path

import yaml

from chatbackend.shutdown import GracefulShutdown

ROOT = Path(__file__).resolve().parents[2]


def uvicorn_graceful_timeout(argv: list[str]) -> float:
    """The value of --timeout-graceful-shutdown in a uvicorn command line (uvicorn's default: none,
    it waits for ever, which no supervisor allows)."""
    start = next(i for i, arg in enumerate(argv) if arg == "uvicorn" or arg.endswith("/uvicorn"))
    args = argv[start:]
    for i, arg in enumerate(args):
        if arg == "--timeout-graceful-shutdown":
            return float(args[i + 1])
        if arg.startswith("--timeout-graceful-shutdown="):
            return float(arg.split("=", 1)[1])
    raise AssertionError(f"uvicorn without --timeout-graceful-shutdown: {args}")


def dockerfile_command() -> list[str]:
    """The Dockerfile's CMD (exec form), with a `sh -c` script split into its words."""
    cmd = None
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            cmd = json.loads(line.removeprefix("CMD "))
    assert cmd, "the Dockerfile has no exec-form CMD"
    if cmd[:2] == ["sh", "-c"]:
        return shlex.split(cmd[2].replace("&&", " && "))
    return cmd


def compose_duration_s(value: str) -> float:
    """A compose duration such as `40s`, `1m30s`, `1m` in seconds."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", str(value).strip())
    assert parts and any(parts.groups()), f"not a compose duration: {value!r}"
    hours, minutes, seconds = (float(part or 0) for part in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


def save_timeout_s() -> float:
    from chatbackend.asgi import application

    assert isinstance(application, GracefulShutdown)
    return application.save_timeout_s


def test_compose_waits_longer_than_the_app_takes_to_stop():
    app = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["app"]
    command = app.get("command")
    argv = shlex.split(command) if isinstance(command, str) else command or dockerfile_command()
    uvicorn_s = uvicorn_graceful_timeout(argv)
    grace_s = compose_duration_s(app.get("stop_grace_period", "10s"))  # compose's default

    assert uvicorn_s + save_timeout_s() < grace_s, (uvicorn_s, save_timeout_s(), grace_s)


def test_the_readme_kubernetes_spec_waits_longer_than_the_image_takes_to_stop():
    readme = (ROOT / "README.md").read_text()
    specs = [
        yaml.safe_load(block)
        for block in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
        if "terminationGracePeriodSeconds" in block
    ]
    assert len(specs) == 1, "README needs one Kubernetes spec with terminationGracePeriodSeconds"
    grace_s = float(specs[0]["spec"]["terminationGracePeriodSeconds"])
    uvicorn_s = uvicorn_graceful_timeout(dockerfile_command())

    assert uvicorn_s + save_timeout_s() < grace_s, (uvicorn_s, save_timeout_s(), grace_s)


def test_the_parsers_read_what_they_claim():
    """The helpers above, on known inputs (so that a parsing slip cannot pass the checks)."""
    assert compose_duration_s("40s") == 40
    assert compose_duration_s("1m30s") == 90
    assert (
        uvicorn_graceful_timeout(["exec", "uvicorn", "app", "--timeout-graceful-shutdown", "7"])
        == 7
    )
    assert (
        uvicorn_graceful_timeout(["python", "-m", "uvicorn", "x", "--timeout-graceful-shutdown=3"])
        == 3
    )
