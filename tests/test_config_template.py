"""config_template.py imported as Errbot would, under different environments and working directories."""

import fnmatch
import importlib.util
import itertools
import logging
import os
import shutil
import types

import pytest
from errbot.bootstrap import bot_config_defaults

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "config_template.py")
VARIABLES = (
    "TELEGRAM_TOKEN TELEGRAM_API_URL TELEGRAM_POLL_TIMEOUT TELEGRAM_PACING RELAY_ADMINS RELAY_DATA_DIR "
    "RELAY_LOG_FILE RELAY_LOG_LEVEL RELAY_HTTP_HOST RELAY_HTTP_PORT RELAY_PUBLIC_URL RELAY_APP_ID "
    "RELAY_API_KEY_ID RELAY_API_KEY_SECRET RELAY_FILE_LINK_TTL RELAY_BIG_FILE_NOTICE RELAY_WEBHOOK_TIMEOUT "
    "RELAY_WEBHOOK_ATTEMPTS RELAY_MAX_BODY_BYTES STRIPE_API_KEY STRIPE_WEBHOOK_SECRET STRIPE_API_BASE "
    "RELAY_DEFAULT_CURRENCY RELAY_PAYMENT_CONFIRMATION RELAY_CHECKOUT_TTL"
).split()
_names = itertools.count()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def load(monkeypatch):
    """Import a config file as a fresh module with exactly these variables set (restored after the test)."""

    def load(path: str = TEMPLATE, **env: str) -> types.ModuleType:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        spec = importlib.util.spec_from_file_location(f"config_under_test_{next(_names)}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def copy(tmp_path):
    """The template copied as config.py into a fresh directory, as a deployment would."""
    target = tmp_path / "deploy"
    target.mkdir()
    shutil.copy(TEMPLATE, target / "config.py")
    return target


def test_defaults(load, copy):
    config = load(str(copy / "config.py"))
    data = str(copy / "data")
    assert config.BACKEND == "TGRelay" and config.STORAGE == "SQLite"
    assert config.BOT_EXTRA_BACKEND_DIR == str(copy / "backends")
    assert config.BOT_EXTRA_PLUGIN_DIR == str(copy / "plugins")
    assert config.BOT_EXTRA_STORAGE_PLUGINS_DIR == str(copy / "storage")
    assert config.BOT_DATA_DIR == data and os.path.isdir(data)
    assert config.BOT_LOG_FILE == os.path.join(data, "errbot.log")
    assert config.BOT_LOG_LEVEL == logging.INFO
    assert config.BOT_IDENTITY == {
        "token": None,
        "api_url": "https://api.telegram.org",
        "poll_timeout": 30,
        "pacing": True,
    }
    assert config.WEBSERVER_CONFIG == {"HOST": "127.0.0.1", "PORT": 3141, "SSL": None, "MAX_BODY_BYTES": 2 << 20}
    assert config.RELAY_PUBLIC_URL == "http://127.0.0.1:3141"
    assert (config.RELAY_APP_ID, config.RELAY_API_KEY_ID, config.RELAY_API_KEY_SECRET) == (None, None, None)
    assert config.RELAY_FILE_LINK_TTL == 604800
    assert config.RELAY_BIG_FILE_NOTICE is None  # the relay applies its built-in text
    assert config.RELAY_WEBHOOK_TIMEOUT == 20.0 and isinstance(config.RELAY_WEBHOOK_TIMEOUT, float)
    assert config.RELAY_WEBHOOK_ATTEMPTS == 5
    assert config.RELAY_MAX_BODY_BYTES == 1024 * 1024
    assert (config.STRIPE_API_KEY, config.STRIPE_WEBHOOK_SECRET) == (None, None)
    assert config.STRIPE_API_BASE == "https://api.stripe.com"
    assert config.RELAY_DEFAULT_CURRENCY == "usd"
    assert config.RELAY_PAYMENT_CONFIRMATION is None
    assert config.RELAY_CHECKOUT_TTL == 86400
    assert config.CPU_AFFINITY == "auto"
    assert config.CORE_PLUGINS == (
        "ACLs", "Help", "Health", "Plugins", "Utils", "CommandNotFoundFilter"
    )
    assert config.HIDE_RESTRICTED_ACCESS is True and config.HIDE_RESTRICTED_COMMANDS is True
    assert config.SUPPRESS_CMD_NOT_FOUND is True and config.AUTOINSTALL_DEPS is False
    assert config.BOT_PREFIX == "!" and config.BOT_PREFIX_OPTIONAL_ON_CHAT is False and config.BOT_ASYNC is True


def test_no_admins_means_nobody_is_admin(load, copy):
    config = load(str(copy / "config.py"), RELAY_ADMINS=" , ")
    assert len(config.BOT_ADMINS) == 1 and config.BOT_ADMINS_NOTIFICATIONS == ()
    assert config.ACCESS_CONTROLS_DEFAULT == {"allowusers": config.BOT_ADMINS, "allowmuc": False}
    for user_id in ("1", "123456789", "-100123", "no"):
        assert not fnmatch.fnmatchcase(user_id, config.BOT_ADMINS[0])


def test_every_setting_from_the_environment(load, copy, tmp_path):
    config = load(
        str(copy / "config.py"),
        TELEGRAM_TOKEN="123:abc",
        TELEGRAM_API_URL="http://127.0.0.1:8081/",
        TELEGRAM_POLL_TIMEOUT="5",
        TELEGRAM_PACING="off",
        RELAY_ADMINS="111, 222,333",
        RELAY_DATA_DIR=str(tmp_path / "var" / "relay"),
        RELAY_LOG_FILE="",
        RELAY_LOG_LEVEL="debug",
        RELAY_HTTP_HOST="0.0.0.0",
        RELAY_HTTP_PORT="8080",
        RELAY_PUBLIC_URL="https://relay.example.com/",
        RELAY_APP_ID="app1",
        RELAY_API_KEY_ID="app_key",
        RELAY_API_KEY_SECRET="s3cret",
        RELAY_FILE_LINK_TTL="60",
        RELAY_BIG_FILE_NOTICE="too big",
        RELAY_WEBHOOK_TIMEOUT="2.5",
        RELAY_WEBHOOK_ATTEMPTS="9",
        RELAY_MAX_BODY_BYTES="2048",
        STRIPE_API_KEY="sk_test_1",
        STRIPE_WEBHOOK_SECRET="whsec_1",
        STRIPE_API_BASE="http://127.0.0.1:12111/",
        RELAY_DEFAULT_CURRENCY="EUR",
        RELAY_PAYMENT_CONFIRMATION="paid",
        RELAY_CHECKOUT_TTL="3600",
        RELAY_CPU_AFFINITY="off",
    )
    assert config.BOT_IDENTITY == {
        "token": "123:abc",
        "api_url": "http://127.0.0.1:8081",
        "poll_timeout": 5,
        "pacing": False,
    }
    assert config.BOT_ADMINS == ("111", "222", "333") == config.BOT_ADMINS_NOTIFICATIONS
    assert config.ACCESS_CONTROLS_DEFAULT == {"allowusers": ("111", "222", "333"), "allowmuc": False}
    assert config.BOT_DATA_DIR == str(tmp_path / "var" / "relay") and os.path.isdir(config.BOT_DATA_DIR)
    assert config.BOT_LOG_FILE is None and config.BOT_LOG_LEVEL == logging.DEBUG
    assert config.WEBSERVER_CONFIG == {"HOST": "0.0.0.0", "PORT": 8080, "SSL": None, "MAX_BODY_BYTES": 4096}
    assert config.RELAY_PUBLIC_URL == "https://relay.example.com"
    assert config.CPU_AFFINITY == "off"
    assert (config.RELAY_APP_ID, config.RELAY_API_KEY_ID, config.RELAY_API_KEY_SECRET) == (
        "app1", "app_key", "s3cret"
    )
    assert config.RELAY_FILE_LINK_TTL == 60 and config.RELAY_BIG_FILE_NOTICE == "too big"
    assert config.RELAY_WEBHOOK_TIMEOUT == 2.5 and config.RELAY_WEBHOOK_ATTEMPTS == 9
    assert config.RELAY_MAX_BODY_BYTES == 2048
    assert (config.STRIPE_API_KEY, config.STRIPE_WEBHOOK_SECRET) == ("sk_test_1", "whsec_1")
    assert config.STRIPE_API_BASE == "http://127.0.0.1:12111"
    assert config.RELAY_DEFAULT_CURRENCY == "eur" and config.RELAY_PAYMENT_CONFIRMATION == "paid"
    assert config.RELAY_CHECKOUT_TTL == 3600


def test_empty_variables_count_as_unset(load, copy):
    config = load(str(copy / "config.py"), TELEGRAM_TOKEN="", RELAY_HTTP_PORT=" ", RELAY_DEFAULT_CURRENCY="")
    assert config.BOT_IDENTITY["token"] is None
    assert config.WEBSERVER_CONFIG["PORT"] == 3141 and config.RELAY_DEFAULT_CURRENCY == "usd"


def test_public_url_brackets_an_ipv6_host(load, copy):
    config = load(str(copy / "config.py"), RELAY_HTTP_HOST="::1", RELAY_HTTP_PORT="9000")
    assert config.RELAY_PUBLIC_URL == "http://[::1]:9000"


def test_relative_paths_follow_the_file_not_the_working_directory(load, copy, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    config = load(str(copy / "config.py"), RELAY_DATA_DIR="state/data", RELAY_LOG_FILE="logs/../bot.log")
    assert config.BOT_DATA_DIR == str(copy / "state" / "data") and os.path.isdir(config.BOT_DATA_DIR)
    assert config.BOT_LOG_FILE == str(copy / "bot.log")
    assert not (elsewhere / "state").exists()


def test_repository_copy_points_at_this_repository(load, tmp_path):
    config = load(RELAY_DATA_DIR=str(tmp_path / "data"))
    assert config.BOT_EXTRA_BACKEND_DIR == os.path.join(ROOT, "backends")
    assert config.BOT_EXTRA_PLUGIN_DIR == os.path.join(ROOT, "plugins")
    assert os.path.isfile(os.path.join(config.BOT_EXTRA_STORAGE_PLUGINS_DIR, "sqlite.plug"))
    for value in (config.BOT_EXTRA_BACKEND_DIR, config.BOT_DATA_DIR, config.BOT_LOG_FILE):
        assert os.path.isabs(value)


def test_errbot_accepts_it_and_keeps_our_values(load, copy):
    config = load(str(copy / "config.py"))
    bot_config_defaults(config)
    assert config.AUTOINSTALL_DEPS is False and config.SUPPRESS_CMD_NOT_FOUND is True
    assert config.BOT_ADMINS_NOTIFICATIONS == () and config.ACCESS_CONTROLS == {}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RELAY_HTTP_PORT", "http", "RELAY_HTTP_PORT must be an integer"),
        ("RELAY_HTTP_PORT", "70000", "RELAY_HTTP_PORT must be between 1 and 65535"),
        ("RELAY_WEBHOOK_TIMEOUT", "soon", "RELAY_WEBHOOK_TIMEOUT must be a number"),
        ("RELAY_WEBHOOK_ATTEMPTS", "0", "RELAY_WEBHOOK_ATTEMPTS must be at least 1"),
        ("RELAY_ADMINS", "123,@boss", "RELAY_ADMINS must be comma-separated numeric"),
        ("RELAY_LOG_LEVEL", "LOUD", "RELAY_LOG_LEVEL must be"),
    ],
)
def test_bad_values_name_the_variable(load, copy, variable, value, message):
    with pytest.raises(ValueError, match=message):
        load(str(copy / "config.py"), **{variable: value})


def test_data_dir_that_cannot_be_created_is_a_clear_error(load, copy, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="RELAY_DATA_DIR: cannot create the data directory") as info:
        load(str(copy / "config.py"), RELAY_DATA_DIR=str(blocker / "data"))
    assert str(blocker / "data") in str(info.value)
