"""docker-compose.yml and Dockerfile, checked statically (no Docker engine on these machines)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from streamer.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SETTING_ENV = {f"STREAMER_{name.upper()}": name for name in Settings.model_fields}
DEFAULT = re.compile(r"^\$\{(\w+):-([^}]*)\}$")


def test_kafka_is_the_official_image_in_kraft_mode_on_one_node():
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert not any("zookeeper" in str(service).lower() for service in SERVICES.values())


@pytest.mark.parametrize("service", ["topics", "worker", "review"])
def test_environment_names_are_settings_and_defaults_agree(service):
    env = SERVICES[service]["environment"]
    unknown = sorted(name for name in env if name.startswith("STREAMER_") and name not in SETTING_ENV)
    assert not unknown, f"not a Settings field: {unknown}"
    defaults = Settings()
    for name, value in env.items():
        if isinstance(value, str) and (m := DEFAULT.match(value)):
            assert m.group(1) == name
            assert m.group(2) == str(getattr(defaults, SETTING_ENV[name])), name


def test_worker_reaches_kafka_on_its_advertised_internal_listener():
    url = SERVICES["worker"]["environment"]["STREAMER_BROKER_URL"]
    advertised = SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert url.removeprefix("kafka://") in {entry.split("://")[1] for entry in advertised.split(",")}


def test_topics_service_creates_every_pipeline_topic_before_workers_start():
    script = SERVICES["topics"]["command"][0]
    for name in ("STREAMER_INPUT_TOPIC", "STREAMER_PARSED_TOPIC", "STREAMER_REVIEW_TOPIC", "STREAMER_DEADLETTER_TOPIC",
                 "STREAMER_NONTRADE_TOPIC", "STREAMER_CORRECTIONS_TOPIC", "STREAMER_REVIEW_STATE_TOPIC"):
        assert f"$${name}" in script and name in SERVICES["topics"]["environment"]
    assert "--if-not-exists" in script
    assert SERVICES["worker"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_the_review_state_topic_is_one_compacted_partition():
    script = SERVICES["topics"]["command"][0]
    line = next(line for line in script.splitlines() if "$$STREAMER_REVIEW_STATE_TOPIC" in line
                or "STREAMER_REVIEW_STATE_TOPIC\"" in line)
    created = script[script.index(line):]
    assert "--partitions 1" in created and "--config cleanup.policy=compact" in created


def test_the_review_desk_listens_beyond_loopback_only_with_a_reviewers_file():
    from streamer.review import DeskRefused, reviewers_for

    review = SERVICES["review"]
    env = review["environment"]
    assert review["command"] == ["review"] and env["STREAMER_REVIEW_HOST"] == "0.0.0.0"
    mount = next(volume for volume in review["volumes"] if volume.endswith(":/config:ro"))
    assert env["STREAMER_REVIEW_USERS_PATH"].startswith(mount.rsplit(":", 2)[1] + "/")
    assert env["STREAMER_BROKER_URL"] == SERVICES["worker"]["environment"]["STREAMER_BROKER_URL"]
    with pytest.raises(DeskRefused, match="loopback only"):  # what the desk would do without the file
        reviewers_for(Settings(review_host=env["STREAMER_REVIEW_HOST"]))


def test_worker_is_built_here_with_the_model_mounted_read_only():
    worker = SERVICES["worker"]
    assert worker["build"] == "." and worker["command"] == ["worker"]
    assert any(volume.endswith(":/models:ro") for volume in worker["volumes"])
    assert "STREAMER_MODEL_PATH" in worker["environment"]


def _pip_installs(text: str) -> list[list[str]]:
    """`pip install` commands of a text, as words without options (`--no-cache-dir` and the like)."""
    found = []
    for line in text.splitlines():
        line = line.strip().removeprefix("RUN ").removeprefix("$ ")
        if re.match(r"^(python -m )?pip install ", line):
            words = shlex.split(line.split("&&")[0])
            found.append([w for w in words[words.index("install") + 1:] if not w.startswith("-")])
    return found


def test_dockerfile_installs_the_package_as_the_docs_say():
    docker = _pip_installs(DOCKERFILE)
    assert docker == [["."]]
    docs = [ROOT / "docs" / "streaming.md"] + [p for p in [ROOT / "README.md"] if p.is_file()]
    for doc in docs:
        assert ["."] in _pip_installs(doc.read_text()), f"{doc.name} does not show `pip install .`"


def test_dockerfile_copies_what_pip_install_needs_and_runs_the_worker():
    copied = " ".join(line for line in DOCKERFILE.splitlines() if line.startswith("COPY"))
    for needed in ("pyproject.toml", "README.md", "schemas/", "streamer/"):
        assert needed in copied
    assert 'ENTRYPOINT ["streamer"]' in DOCKERFILE and 'CMD ["worker"]' in DOCKERFILE
    assert "STREAMER_WEB_HOST=0.0.0.0" in DOCKERFILE


def test_the_image_builds_llama_cpp_for_any_x86_64_server_not_for_the_build_host():
    """A native build on an AMX or AVX-512 build host would die with SIGILL on other hosts."""
    [default] = re.findall(r'^ARG CMAKE_ARGS="([^"]*)"', DOCKERFILE, flags=re.M)
    flags = dict(flag.removeprefix("-D").split("=", 1) for flag in shlex.split(default))
    assert flags["GGML_NATIVE"] == "OFF" and flags["GGML_AVX2"] == "ON"
    assert not [name for name, value in flags.items() if ("AMX" in name or "AVX512" in name) and value == "ON"]
