"""The method registry: declared options (conversion, ranges, messages), run specs, and the CLI built from them."""

from __future__ import annotations

import re

import pytest

from refprune import backends, cli, methods
from refprune.methods import Option, register_method
from refprune.methods._registry import COMMON_OPTIONS, METHODS, integer, number, numbers


# ---------------------------------------------------------------------- Option


def test_numbers_by_type_of_default():
    assert Option("n", 3, "").convert("4") == 4 and Option("n", 3, "").convert(5.0) == 5
    for bad in ("3.5", 2.5, True, "x"):
        with pytest.raises(ValueError, match="expected an integer"):
            Option("n", 3, "").convert(bad)
    assert Option("x", 0.1, "").convert("1e-3") == 0.001 and Option("x", 0.1, "").convert(2) == 2.0
    for bad in ("inf", "nan", float("nan"), True, None, "1,2"):
        with pytest.raises(ValueError, match="expected a"):
            Option("x", 0.1, "").convert(bad)
    assert Option("s", "a", "").convert("b") == "b"
    with pytest.raises(ValueError, match="expected a string"):
        Option("s", "a", "").convert(3)
    assert Option("d", None, "", type=str).convert(None) is None  # an unset optional setting
    assert integer(" 7 ") == 7 and number("0.5") == 0.5


def test_ranges_positive_and_choices():
    bounded = Option("rate", 0.1, "", low=0, high=1)
    assert bounded.convert(0) == 0.0 and bounded.convert("1") == 1.0
    for bad in (-0.01, 1.01):
        with pytest.raises(ValueError, match=r"must be >= 0 and <= 1"):
            bounded.convert(bad)
    positive = Option("lr", 0.1, "", positive=True)
    with pytest.raises(ValueError, match="must be > 0"):
        positive.convert(0.0)
    assert positive.allowed() == "> 0" and bounded.allowed() == ">= 0 and <= 1"
    choice = Option("opt", "adam", "", choices=("adam", "sgd"))
    assert choice.convert("sgd") == "sgd" and choice.allowed() == "one of adam, sgd"
    with pytest.raises(ValueError, match="got 'rmsprop'; choose one of adam, sgd"):
        choice.convert("rmsprop")


def test_number_lists_are_checked_entry_by_entry():
    assert numbers("10,0.5, 0.1") == (10.0, 0.5, 0.1) and numbers("0.1") == 0.1
    assert numbers([1, 2]) == (1.0, 2.0) and numbers([3]) == 3.0 and numbers(4) == 4.0
    for bad in ("", ",", [], "1,x", "1,nan"):
        with pytest.raises(ValueError):
            numbers(bad)
    per_layer = Option("lam", 0.1, "", type=numbers, low=0)
    assert per_layer.convert("1,0") == (1.0, 0.0)
    with pytest.raises(ValueError, match="must be >= 0"):
        per_layer.convert("1,-0.5")


def test_switches():
    on = Option("quiet", False, "")
    off = Option("control", True, "", flag="--no-control")
    assert on.is_switch and off.is_switch and off.cli_flag == "--no-control" and on.cli_flag == "--quiet"
    for text, value in (("true", True), ("1", True), ("Yes", True), ("off", False), ("0", False), (False, False)):
        assert on.convert(text) is value
    with pytest.raises(ValueError, match="expected true or false"):
        on.convert("maybe")
    assert Option("gate_lr", 0.05, "").cli_flag == "--gate-lr"


def test_check_names_the_option():
    with pytest.raises(ValueError, match=r"^gate_lr: got -1.0; must be > 0$"):
        Option("gate_lr", 0.05, "", positive=True).check(-1.0)
    with pytest.raises(ValueError, match=r"^epochs: expected an integer"):
        Option("epochs", None, "", type=integer, low=0).check("many")


# ---------------------------------------------------------------------- the registry and run specs


def test_names_and_lookup():
    assert {"binary", "l0", "lottery", "magnitude", "rvsm", "gmp", "snip", "set", "rigl"} <= set(methods.names())
    for name in methods.names():
        m = methods.get(name)
        assert m.name == name and m.summary and m.doc and callable(m.run)
        assert {"model", "epochs", "batch_size", "lr"} <= set(m.defaults)
    with pytest.raises(ValueError, match="unknown method 'obd'; choose one of " + ", ".join(methods.names())):
        methods.get("obd")
    with pytest.raises(ValueError, match=r"must give defaults for \['batch_size', 'lr'\]"):
        register_method("half", summary="", defaults={"model": "lenet5", "epochs": 1})


@pytest.mark.parametrize("method", methods.names())
def test_make_spec_fills_defaults_and_validates(method):
    m = methods.get(method)
    spec = methods.make_spec(method)
    assert spec.method == method
    for key in ("model", "epochs", "batch_size", "lr"):
        assert getattr(spec, key) == m.defaults[key], key
    assert spec.options == {o.name: o.check(o.default) for o in m.options}
    assert methods.make_spec(method, epochs=3, seed=2).epochs == 3


def test_make_spec_errors_name_the_setting():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['lamda'\] for method 'l0'; its options are "
                                         r"\['droprate_init', 'gate_lr', .*'temperature', 'weight_decay'\]"):
        methods.make_spec("l0", lamda=0.1)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['rounds'\] for method 'magnitude'"):
        methods.make_spec("magnitude", rounds=2)  # another method's option
    with pytest.raises(ValueError, match="epochs: got -1"):
        methods.make_spec("l0", epochs=-1)
    with pytest.raises(ValueError, match="backend: got 'tensorflow'; choose one of " + ", ".join(backends.NAMES)):
        methods.make_spec("l0", backend="tensorflow")
    with pytest.raises(ValueError, match="model: got 'resnet'; choose one of mlp-300-100"):
        methods.make_spec("l0", model="resnet")
    with pytest.raises(ValueError, match="gate_lr"):
        methods.make_spec("l0", gate_lr=0)


def test_a_registered_method_runs_through_the_api(tmp_path, monkeypatch):
    seen = {}

    @register_method("probe", summary="records what it is given",
                     defaults={"model": "mlp-300-100", "epochs": 0, "batch_size": 10, "lr": 0.1},
                     options=[Option("level", 2, "a level", low=1)])
    def run(eng, o):
        seen.update(spec=eng.spec, level=o.level)
        return {"level": o.level}

    monkeypatch.setitem(METHODS, "probe", METHODS.pop("probe"))
    assert methods.run("probe", level="3", data="digits", subset=20, out=str(tmp_path), quiet=True) == {"level": 3}
    assert seen["spec"].model == "mlp-300-100" and seen["spec"].subset == 20 and seen["level"] == 3


# ---------------------------------------------------------------------- the command line built from the options


@pytest.mark.parametrize("method", methods.names())
def test_every_option_is_a_flag_with_its_default(method):
    m = methods.get(method)
    args = cli.build_parser().parse_args(["run", method])
    spec = methods.make_spec(method)
    for option in m.options:
        assert getattr(args, option.name) == spec.options[option.name], option.name  # CLI and API agree
    for option in COMMON_OPTIONS:
        expected = m.defaults.get(option.name, option.default)
        assert getattr(args, option.name) == (option.check(expected) if expected is not None else None), option.name


@pytest.mark.parametrize("method", methods.names())
def test_help_lists_every_flag_as_plain_text(method, capsys):
    """``--help`` shows each option and the method's docs rendered as plain text: no reST roles, no LaTeX."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", method, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in (*COMMON_OPTIONS, *methods.get(method).options):
        assert option.cli_flag in text, option.cli_flag
    for markup in (":math:", "``", ":func:", ":class:", ":mod:", ":meth:", ".. math::"):
        assert markup not in text, markup
    commands = re.findall(r"\\[A-Za-z]+", text)  # a shell line continuation is a backslash before a newline
    assert not commands, commands
    assert methods.get(method).doc.strip().splitlines()[0].split("(")[0].strip(" .`*") in text


def test_the_methods_package_docstring_lists_every_method():
    from refprune import methods

    missing = [name for name in methods.names() if f"``{name}``" not in methods.__doc__]
    assert not missing, f"refprune/methods/__init__.py's table lacks {missing}"
