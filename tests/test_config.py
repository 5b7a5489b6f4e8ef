"""Process-wide settings: one place, environment variables as defaults, read when used."""

import importlib.util
import math
import re
import threading
import time

import pytest

import sktransfer
from sktransfer import config_context, get_config, set_config
from sktransfer._core.activations import shared_store_bytes
from sktransfer.backbones import is_offline
from sktransfer.cli import main
from sktransfer.exceptions import WeightsUnavailableError

SETTINGS = (
    "debug",
    "engine",
    "engine_disk_cache",
    "inference_precision",
    "models_folder",
    "offline",
    "shared_cache_size",
)
VARIABLES = ("SKTRANSFER_OFFLINE", "HF_HUB_OFFLINE", "SKTRANSFER_HOME", "XDG_CACHE_HOME")


@pytest.fixture(autouse=True)
def _defaults():
    """Every test starts and ends with every setting at its default."""
    set_config(**dict.fromkeys(SETTINGS))
    yield
    set_config(**dict.fromkeys(SETTINGS))


@pytest.fixture
def no_variables(monkeypatch, tmp_path):
    """None of the variables set (conftest sets the offline ones), and a home of our own."""
    for name in (*VARIABLES, "SKTRANSFER_DEBUG", "SKTRANSFER_ENGINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def in_thread(fn):
    """Run ``fn`` in a new thread and return what it returned."""
    out = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


# --- defaults and the environment ------------------------------------------------------------
def test_defaults_without_any_variable(no_variables):
    assert get_config() == {
        "offline": False,
        "models_folder": no_variables / ".cache" / "sktransfer",
        "shared_cache_size": 1024,
        "debug": False,
        "engine": "auto",
        "inference_precision": "fp32",
        "engine_disk_cache": False,
    }
    assert sorted(get_config()) == list(SETTINGS)


@pytest.mark.parametrize(
    "variable, value, setting, expected",
    [
        ("SKTRANSFER_OFFLINE", "1", "offline", True),
        ("SKTRANSFER_OFFLINE", "yes", "offline", True),
        ("SKTRANSFER_OFFLINE", "0", "offline", False),
        ("SKTRANSFER_OFFLINE", "false", "offline", False),
        ("SKTRANSFER_OFFLINE", "", "offline", False),
        ("HF_HUB_OFFLINE", "1", "offline", True),
        ("SKTRANSFER_DEBUG", "1", "debug", True),
        ("SKTRANSFER_DEBUG", "0", "debug", False),
    ],
)
def test_a_variable_is_the_default_when_the_setting_is_read(
    no_variables, monkeypatch, variable, value, setting, expected
):
    assert get_config()[setting] is False
    monkeypatch.setenv(variable, value)  # after the import: read at each call
    assert get_config()[setting] is expected
    monkeypatch.delenv(variable)
    assert get_config()[setting] is False


def test_the_models_folder_follows_its_variables(no_variables, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert get_config()["models_folder"] == tmp_path / "xdg" / "sktransfer"
    monkeypatch.setenv("SKTRANSFER_HOME", str(tmp_path / "home"))  # first in line
    assert get_config()["models_folder"] == tmp_path / "home"


def test_offline_is_on_in_the_tests():
    assert get_config()["offline"] is True and is_offline()  # conftest's variables


# --- set_config ------------------------------------------------------------------------------
def test_a_setting_overrides_the_environment_and_none_restores_it(monkeypatch, tmp_path):
    monkeypatch.setenv("SKTRANSFER_OFFLINE", "1")
    monkeypatch.setenv("SKTRANSFER_DEBUG", "1")
    monkeypatch.setenv("SKTRANSFER_HOME", str(tmp_path / "from variable"))
    set_config(offline=False, debug=False, models_folder=str(tmp_path / "set"))
    monkeypatch.setenv("SKTRANSFER_ENGINE", "openvino")
    set_config(shared_cache_size=0.5, engine="torch")
    assert get_config() == {
        "offline": False,
        "models_folder": tmp_path / "set",  # a path, whatever it was given as
        "shared_cache_size": 0.5,
        "debug": False,
        "engine": "torch",
        "inference_precision": "fp32",
        "engine_disk_cache": False,
    }
    assert not is_offline()  # the loaders ask the settings
    set_config(offline=None, shared_cache_size=None)
    assert get_config()["offline"] is True and get_config()["shared_cache_size"] == 1024
    assert get_config()["debug"] is False  # untouched settings stay
    set_config(debug=None, models_folder=None, engine=None)
    assert get_config()["debug"] is True
    assert get_config()["engine"] == "openvino"
    assert get_config()["models_folder"] == tmp_path / "from variable"


def test_get_config_returns_a_copy():
    config = get_config()
    config["shared_cache_size"] = 0
    config["debug"] = "changed"
    assert get_config()["shared_cache_size"] == 1024 and get_config()["debug"] is False


def test_an_unknown_setting_is_a_type_error_naming_the_settings():
    with pytest.raises(TypeError, match="cache_size; the settings are " + ", ".join(SETTINGS)):
        set_config(debug=True, cache_size=3)
    assert get_config()["debug"] is False  # nothing of the call was applied
    with pytest.raises(TypeError, match="offine"), config_context(offine=True):
        pass


@pytest.mark.parametrize(
    "setting, value",
    [
        ("shared_cache_size", -1),
        ("shared_cache_size", -1e-9),
        ("shared_cache_size", math.nan),
        ("shared_cache_size", math.inf),
        ("shared_cache_size", True),
        ("shared_cache_size", "10"),
        ("offline", 1),
        ("offline", "1"),
        ("debug", "yes"),
        ("models_folder", 3),
    ],
)
def test_a_bad_value_is_a_value_error_and_changes_nothing(setting, value):
    before = get_config()
    with pytest.raises(ValueError, match=f"{setting} must be .*; got {re.escape(repr(value))}"):
        set_config(**{"shared_cache_size": 2, "debug": True, setting: value})
    with pytest.raises(ValueError, match=setting), config_context(**{setting: value}):
        pass
    assert get_config() == before


def test_the_store_size_is_a_number_of_mib():
    for size, expected in [(0, 0), (0.5, 2**19), (2, 2**21)]:
        set_config(shared_cache_size=size)
        assert shared_store_bytes() == expected


def test_the_package_exposes_the_three_functions():
    from sktransfer import _config

    for name in ("set_config", "get_config", "config_context"):
        assert name in sktransfer.__all__
        assert getattr(sktransfer, name) is getattr(_config, name)


# --- config_context --------------------------------------------------------------------------
def test_config_context_restores_the_settings_on_leaving_even_after_an_error():
    set_config(shared_cache_size=8)
    with config_context(shared_cache_size=0, debug=True):
        assert get_config()["shared_cache_size"] == 0 and get_config()["debug"] is True
        with config_context(shared_cache_size=2):  # nested: the inner one, then back
            assert get_config()["shared_cache_size"] == 2
        assert get_config()["shared_cache_size"] == 0
    assert get_config()["shared_cache_size"] == 8 and get_config()["debug"] is False
    with pytest.raises(RuntimeError, match="inside"), config_context(debug=True):
        raise RuntimeError("inside")
    assert get_config()["debug"] is False
    with config_context(debug=True):
        set_config(shared_cache_size=4)  # a change made inside ends with the block too
    assert get_config()["shared_cache_size"] == 8


# --- threads ---------------------------------------------------------------------------------
def test_a_thread_started_in_a_context_sees_its_settings_and_later_threads_do_not():
    def size():
        return get_config()["shared_cache_size"]

    with config_context(shared_cache_size=3):
        assert in_thread(size) == 3
    assert in_thread(size) == 1024
    set_config(shared_cache_size=5)  # set in the main thread: new threads start with it
    assert in_thread(size) == 5


def test_a_setting_made_in_a_thread_stays_in_that_thread():
    def set_and_read():
        set_config(debug=True)
        return get_config()["debug"]

    assert in_thread(set_and_read) is True
    assert get_config()["debug"] is False
    assert in_thread(lambda: get_config()["debug"]) is False


def test_a_context_left_in_a_thread_keeps_what_the_main_thread_set_meanwhile():
    entered, leave = threading.Event(), threading.Event()

    def worker():
        with config_context(debug=True):
            entered.set()
            leave.wait(timeout=30)

    thread = threading.Thread(target=worker)
    thread.start()
    assert entered.wait(timeout=30)
    set_config(shared_cache_size=10)
    leave.set()
    thread.join()
    assert get_config()["shared_cache_size"] == 10
    assert in_thread(lambda: get_config()["shared_cache_size"]) == 10


# --- the settings at work --------------------------------------------------------------------
def test_offline_setting_makes_a_missing_weight_file_fail_at_once(
    no_variables, monkeypatch, tmp_path
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty cache
    set_config(offline=True)  # no variable says so
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="offline mode is on"):
        sktransfer.load_backbone("resnet18")
    assert time.perf_counter() - start < 2


@pytest.mark.skipif(
    importlib.util.find_spec("all_minilm_l6_v2") is None, reason="the bundled text model"
)
def test_the_bundled_text_model_is_unpacked_into_the_models_folder(tmp_path):
    from sktransfer.backbones._text_models import model_folder

    with config_context(models_folder=tmp_path / "models here"):
        folder = model_folder("all-MiniLM-L6-v2")
    assert folder.parent == tmp_path / "models here" / "models"
    assert (folder / "config.json").is_file()


def test_the_command_line_prints_a_traceback_only_with_debug(
    no_variables, monkeypatch, tmp_path, capsys
):
    args = ["extract", str(tmp_path / "no such folder"), "-o", str(tmp_path / "f.csv")]
    assert main(args) == 2
    assert "Image folder not found" in capsys.readouterr().err
    with config_context(debug=True), pytest.raises(FileNotFoundError, match="no such folder"):
        main(args)
    monkeypatch.setenv("SKTRANSFER_DEBUG", "1")  # the setting's default
    with pytest.raises(FileNotFoundError):
        main(args)
    with config_context(debug=False):  # the setting wins over the variable
        assert main(args) == 2
