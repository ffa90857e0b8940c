"""Training flags and TrainConfig: defaults, roles, one-line errors (no training here)."""
import pytest

import kvasir_tf  # noqa: F401
from kvasir_tf import config as C
from kvasir_tf import rundir
from kvasir_tf import train as T
from kvasir_tf.errors import KvasirError


def cfg_from(argv):
    return C.config_from_args(T.parser().parse_args(argv))


def test_demo_and_data_dir_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exc:
        T.parser().parse_args(["--demo", "--data-dir", "x"])
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_help_states_each_default_once(capsys):
    with pytest.raises(SystemExit):
        T.parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert out.count("(default 224)") == 1 and "(default: None)" not in out


def test_config_field_roles_decide_resume_and_reuse():
    roles = {f.name: f.metadata["role"] for f in C.dataclasses.fields(C.TrainConfig)}
    assert roles["epochs"] == rundir.SCHEDULE and roles["lr"] == rundir.SCHEDULE
    assert roles["image_size"] == rundir.LEARN and roles["init_from"] == rundir.ORIGIN
    assert roles["out"] == rundir.PLACE and roles["progress"] == rundir.PLACE


def test_cli_without_data_explains_and_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(C.DATA_ENV, raising=False)
    assert T.main(["--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no dataset")
    assert "--data-dir" in err and "--demo" in err and "kvasir-data download" in err
    assert not (tmp_path / "runs").exists()  # never trains on nothing


def test_defaults_paper_and_demo():
    paper = cfg_from([])
    assert (paper.mode, paper.epochs, paper.batch_size, paper.mask_fraction) == ("sgt-pact-qat", 50, 128, 0.5)
    assert (paper.image_size, paper.alpha, paper.bn_momentum) == (224, 1.0, None)
    demo = cfg_from(["--demo", "--epochs", "2"])
    assert demo.demo and demo.epochs == 2  # explicit flags win over the demo defaults
    assert demo.image_size == C.DEMO_DEFAULTS["image_size"] and demo.alpha == C.DEMO_DEFAULTS["alpha"]


def test_warmup_is_opt_in_and_only_for_guided_modes():
    assert cfg_from([]).warmup == 0                                   # the paper: guided from step 1
    assert cfg_from(["--epochs", "10", "--warmup-epochs", "4"]).warmup == 4
    assert cfg_from(["--mode", "pact-qat", "--epochs", "10", "--warmup-epochs", "4"]).warmup == 0
    with pytest.raises(KvasirError, match="--warmup-epochs 10: use 0..9"):
        C.TrainConfig(epochs=10, warmup_epochs=10).validate()


def test_saliency_every_is_a_learning_setting_off_by_default():
    assert cfg_from([]).saliency_every == 1
    cfg = cfg_from(["--saliency-every", "4"])
    assert cfg.saliency_every == 4 and C.dataclasses.asdict(cfg)["saliency_every"] == 4  # config.json
    roles = {f.name: f.metadata for f in C.dataclasses.fields(C.TrainConfig)}
    assert roles["saliency_every"]["role"] == rundir.LEARN and roles["saliency_every"]["guided_only"]
    with pytest.raises(KvasirError, match="--lambda2 0"):
        cfg_from(["--saliency-every", "4", "--lambda2", "1"]).validate()


@pytest.mark.parametrize("flags,match", [
    (["--saliency-every", "0"], "--saliency-every"),
    (["--mask-fraction", "1.5"], "--mask-fraction"),
    (["--bits", "9"], "--bits"),
    (["--epochs", "0"], "--epochs"),
    (["--weights", "/nonexistent/w.h5"], "--weights"),
])
def test_bad_flags_are_one_line_errors(flags, match):
    with pytest.raises(KvasirError, match=match):
        cfg_from(flags).validate()




def test_the_step_and_the_model_take_their_defaults_and_rules_from_train_config():
    """TrainConfig owns every default and rule of the guided step and the model: the wrapper and
    the builder read them, and one setting gets the same verdict (and message) from both."""
    import inspect
    from kvasir_tf.model import build_mobilenetv2
    from kvasir_tf.saliency_training import SaliencyGuidedModel
    d = C.TrainConfig()
    step = inspect.signature(SaliencyGuidedModel.__init__).parameters
    for name in ("lambda1", "lambda2", "mask_fraction", "mask_scope", "mask_value", "saliency_reduce",
                 "saliency_every"):
        assert step[name].default == getattr(d, name), name
    build = inspect.signature(build_mobilenetv2).parameters
    assert (build["dropout"].default, build["pact_alpha_init"].default, build["pact_eta"].default) == (
        d.dropout, d.pact_alpha_init, d.eta)
    model = tf_linear()
    for bad in ({"mask_fraction": 1.5}, {"mask_scope": "pixel"}, {"saliency_every": 2, "lambda2": 1.0}):
        with pytest.raises(KvasirError) as from_config:
            C.dataclasses.replace(d, **bad).validate()
        with pytest.raises(KvasirError) as from_model:
            SaliencyGuidedModel(model, **bad)
        assert str(from_config.value) == str(from_model.value), bad
    for fine in ({"mask_fraction": 1.0}, {"mask_fraction": 0.0}):    # [0, 1] for both
        C.dataclasses.replace(d, **fine).validate()
        SaliencyGuidedModel(model, **fine)


def tf_linear():
    import tensorflow as tf
    inp = tf.keras.Input((4, 4, 3))
    return tf.keras.Model(inp, tf.keras.layers.Dense(2, activation="softmax")(tf.keras.layers.Flatten()(inp)))
