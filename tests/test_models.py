"""Architectures: shapes, shape rules, paper sizes, ANN/SNN weight compatibility, streaming."""

import copy
import functools

import pytest
import torch
from torch import nn

from snnlib import catalog, models
from snnlib.convert import convert
from snnlib.layers import TEBN
from snnlib.models.blocks import Layers
from snnlib.models.resnet import BasicBlock
from snnlib.neurons import LIF, Collector, RunState
from snnlib.qcfs import QCFS

SMALL = ("mnist-cnn", "mnist-mlp", "dvs-cnn")
BIG = tuple(a for a in models.ARCHITECTURES if a not in SMALL)
CONVERTIBLE = tuple(a for a in models.ARCHITECTURES if catalog.ARCH_INFO[a].convertible)
# Activation layers per network, counted from docs/method.md §2.3 (convs and hidden Linears).
N_ACT = {
    "mnist-cnn": 3,
    "mnist-mlp": 2,
    "dvs-cnn": 3,
    "vgg16": 13 + 2,
    "resnet18": 1 + 2 * (2 + 2 + 2 + 2),
    "resnet34": 1 + 2 * (3 + 4 + 6 + 3),
    "resnet18-tiny": 1 + 2 * (2 + 2 + 2 + 2),
    "vggann": 9,
    "vgg-gesture": 6 + 1,
    "vggann-ncaltech101": 9,
}
# Smallest accepted H = W (None: any size) from the pooling arithmetic of docs/method.md §2.3.
MIN_SIZE = {
    "mnist-cnn": 4,
    "mnist-mlp": None,
    "dvs-cnn": 8,
    "vgg16": 32,
    "resnet18": None,
    "resnet34": None,
    "resnet18-tiny": None,
    "vggann": 64,
    "vgg-gesture": 128,
    "vggann-ncaltech101": 64,
}


def ref_shape(arch):
    return catalog.ARCH_INFO[arch].reference  # (C, H, W)


@functools.cache
def built(arch, neuron):
    """One model per (arch, neuron) at its reference input, shared: tests only read it."""
    torch.manual_seed(0)
    c, h, w = ref_shape(arch)
    return models.build(arch, num_classes=5, in_channels=c, input_size=(h, w), neuron=neuron)


def test_architecture_names():
    assert set(models.ARCHITECTURES) == set(N_ACT)


@pytest.mark.parametrize("neuron", models.NEURONS)
@pytest.mark.parametrize("arch", SMALL)
def test_small_nets_give_T_B_K(arch, neuron):
    c, h, w = ref_shape(arch)
    net = models.build(arch, num_classes=5, in_channels=c, input_size=(h, w), neuron=neuron)
    out = net(torch.rand(2, 3, c, h, w))
    assert out.shape == (2, 3, 5)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("neuron", "norm"),
    # the spiking variants in the fast tier; the ANN ones (relu, qcfs) in the full suite
    [pytest.param(n, "bn", marks=pytest.mark.slow) for n in models.NEURONS if n != "lif"]
    + [("lif", "bn"), ("lif", "tebn")],
)
@pytest.mark.parametrize("arch", BIG)
def test_big_nets_give_T_B_K_on_meta(arch, neuron, norm):
    """Shape only, at the paper's input: weights and input on the meta device (no compute)."""
    c, h, w = ref_shape(arch)
    if norm == "bn":
        net = built(arch, neuron)
    else:
        net = models.build(arch, num_classes=5, in_channels=c, neuron=neuron, norm=norm, T=2)
    meta = {  # tensors only: a layer's extra state (LIF parameters) is a dict
        k: torch.empty_like(v, device="meta")
        for k, v in net.state_dict().items()
        if torch.is_tensor(v)
    }
    x = torch.empty(2, 1, c, h, w, device="meta")
    assert torch.func.functional_call(net, meta, (x,)).shape == (2, 1, 5)


@pytest.mark.parametrize("arch", models.ARCHITECTURES)
def test_count_layers_matches_method_doc(arch):
    for neuron in models.NEURONS:
        counts = models.count_layers(built(arch, neuron))
        assert counts == {k: N_ACT[arch] if k == neuron else 0 for k in models.NEURONS}


@pytest.mark.parametrize(
    ("arch", "input_size", "in_features"),
    [
        ("vgg16", (32, 32), 512),
        ("vggann", (128, 128), 512 * 2 * 2),
        ("vggann-ncaltech101", (180, 240), 512 * 2 * 3),
        ("vgg-gesture", (128, 128), 128),
        ("resnet18", (32, 32), 512),
        ("resnet18-tiny", (64, 64), 512),
    ],
)
def test_first_classifier_linear_as_documented(arch, input_size, in_features):
    """docs/method.md §2.3: the Linear after Flatten is sized by the paper's input."""
    net = models.build(arch, num_classes=11, in_channels=2, input_size=input_size)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert linears[0].in_features == in_features
    assert linears[-1].out_features == 11


def test_vgg16_imagenet_classifier_size():
    """The first Linear is 512·7·7 -> 4096 at 224x224 (docs/method.md §2.3), from the same rule."""
    assert catalog.ARCH_INFO["vgg16"].feature_size((224, 224)) == (7, 7)


def test_resnet_parameter_counts_are_the_known_cifar10_ones():
    for arch, n in [("resnet18", 11_173_962), ("resnet34", 21_282_122)]:
        net = models.build(arch, num_classes=10, in_channels=3)
        assert sum(p.numel() for p in net.parameters()) == n


def test_vgg16_init_is_kaiming_fan_out():
    net = built("vgg16", "relu")
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13
    w = convs[-1].weight  # 512 -> 512, 3x3: std = sqrt(2 / fan_out) = sqrt(2 / (512*9))
    assert w.std().item() == pytest.approx((2 / (512 * 9)) ** 0.5, rel=0.03)
    assert all(m.bias.abs().max() == 0 for m in net.modules() if isinstance(m, nn.Linear))


def test_resnet_shortcut_is_added_before_the_last_activation():
    """With the residual branch silenced, an identity block computes act(x), not act(0) + x."""
    block = BasicBlock(Layers("relu"), 4, 4, stride=1).eval()
    last_bn = block.residual[-1].module
    nn.init.zeros_(last_bn.weight)
    nn.init.zeros_(last_bn.bias)
    x = torch.randn(2, 3, 4, 5, 5)
    assert torch.equal(block(x), torch.relu(x))


@pytest.mark.parametrize("arch", CONVERTIBLE)
def test_qcfs_ann_converts_to_one_if_neuron_per_qcfs(arch):
    ann = built(arch, "qcfs")
    snn, report = convert(ann)
    counts = models.count_layers(snn)
    assert counts["lif"] == len(report) == models.count_layers(ann)["qcfs"] == N_ACT[arch]
    assert counts["qcfs"] == 0


def test_vgg_gesture_keeps_maxpool_so_conversion_refuses():
    assert not catalog.ARCH_INFO["vgg-gesture"].convertible
    with pytest.raises(ValueError, match="MaxPool2d"):
        convert(built("vgg-gesture", "qcfs"))


@pytest.mark.parametrize("arch", models.ARCHITECTURES)
def test_ann_and_snn_share_parameter_names_and_shapes(arch):
    """One definition: relu/qcfs/lif differ only by QCFS ``lam`` and the LIF threshold."""
    sd = {n: built(arch, n).state_dict() for n in models.NEURONS}
    extra = "._extra_state"  # a LIF layer's parameters (decay, reset, v_init, ...)
    shapes = {n: {k: v.shape for k, v in d.items() if not k.endswith(extra)} for n, d in sd.items()}
    lam = {k for k in shapes["qcfs"] if k.endswith(".lam")}
    thresholds = {k for k in shapes["lif"] if k.endswith(".threshold")}
    assert len(lam) == len(thresholds) == N_ACT[arch]
    relu = shapes["relu"]
    assert {k: s for k, s in shapes["qcfs"].items() if k not in lam} == relu
    assert {k: s for k, s in shapes["lif"].items() if k not in thresholds} == relu
    # an ANN checkpoint's weights load into the SNN built from the same definition
    snn = copy.deepcopy(built(arch, "lif"))
    ann_weights = {k: v for k, v in sd["qcfs"].items() if k not in lam}
    result = snn.load_state_dict(ann_weights, strict=False)
    assert {k for k in result.missing_keys if not k.endswith(extra)} == thresholds
    assert not result.unexpected_keys


@pytest.mark.parametrize(
    ("arch", "in_channels", "input_size", "norm"),
    [
        ("mnist-cnn", 1, (28, 28), "bn"),
        ("resnet18", 3, (4, 4), "bn"),
        ("dvs-cnn", 2, (34, 34), "tebn"),
        ("mnist-mlp", 1, (12, 12), "tebn"),
    ],
)
def test_streaming_equals_multistep(arch, in_channels, input_size, norm):
    """Eval mode: stepping ``x[t:t+1]`` through a RunState gives the multi-step output."""
    torch.manual_seed(0)
    T = 4
    net = models.build(
        arch,
        num_classes=4,
        in_channels=in_channels,
        input_size=input_size,
        neuron="lif",
        norm=norm,
        T=T,
    )
    x = torch.rand(T, 2, in_channels, *input_size) * 2
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 1.0  # running statistics = those of the next batch
        if isinstance(m, TEBN):
            nn.init.uniform_(m.p, 0.5, 1.5)  # a wrong p_t index would show
    collector = Collector(detach=True)
    with torch.no_grad():
        net.train()(x)
        whole = net.eval()(x, collector=collector)
        state = RunState()
        steps = torch.cat([net(x[t : t + 1], state) for t in range(T)])
    assert torch.equal(steps, whole)
    rates = [r.spikes.mean().item() for r in collector.records]
    assert all(0 < r < 1 for r in rates), rates  # the neurons really spike, and not always


@pytest.mark.parametrize(
    ("arch", "neuron", "input_size"),
    [
        ("mnist-cnn", "lif", (28, 28)),
        ("mnist-mlp", "qcfs", (28, 28)),
        ("resnet18", "lif", (4, 4)),
        ("resnet34", "qcfs", (2, 2)),
        ("vgg-gesture", "lif", (128, 128)),
    ],
)
def test_collector_gets_one_record_per_spiking_layer(arch, neuron, input_size):
    c = ref_shape(arch)[0]
    net = models.build(arch, num_classes=3, in_channels=c, input_size=input_size, neuron=neuron)
    collector = Collector(detach=True)
    with torch.no_grad():
        net.eval()(torch.rand(2, 1, c, *input_size), collector=collector)
    kind = LIF if neuron == "lif" else QCFS
    layers = [m for m in net.modules() if isinstance(m, kind)]
    assert len(collector.records) == len(layers) == N_ACT[arch]
    assert {id(r.layer) for r in collector.records} == {id(m) for m in layers}
    if neuron == "lif":
        assert all(r.spikes.shape[:2] == (2, 1) for r in collector.records)


def test_check_input_rejects_a_wrong_shape_with_a_message():
    with pytest.raises(ValueError, match=r"vggann cannot take input 1x28x28") as err:
        models.check_input("vggann", 1, (28, 28), 10)
    assert "H, W >= 64" in str(err.value)
    assert "2x128x128" in str(err.value)
    models.check_input("vggann", 2, (128, 128), 10)
    models.check_input("vggann-ncaltech101", 2, (180, 240), 101)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("vgg19", 3, (32, 32), 10), "arch='vgg19' is not known"),
        (("vgg16", 3, (32, 32), 0), "num_classes must be an integer >= 1; got 0"),
        (("vgg16", 0, (32, 32), 10), "in_channels must be an integer >= 1; got 0"),
        (("vgg16", 3, (32,), 10), r"input_size=\(32,\) must be \(H, W\)"),
        (("vgg16", 3, (32, 16), 10), "vgg16 cannot take input 3x32x16"),
        (("vgg-gesture", 2, (64, 64), 11), "vgg-gesture cannot take input"),
    ],
)
def test_check_input_errors(args, match):
    with pytest.raises(ValueError, match=match):
        models.check_input(*args)


def test_every_architecture_has_a_builder_and_a_shape_rule():
    assert set(models.BUILDERS) == set(catalog.ARCH_INFO)


@pytest.mark.parametrize("arch", models.ARCHITECTURES)
def test_shape_rule_matches_the_network(arch):
    """The smallest accepted input runs; one pixel less is rejected by ``check_input``."""
    c = ref_shape(arch)[0]
    size = MIN_SIZE[arch] or 1
    net = models.build(arch, num_classes=3, in_channels=c, input_size=(size, size), neuron="lif")
    with torch.no_grad():
        assert net.eval()(torch.rand(2, 1, c, size, size)).shape == (2, 1, 3)
    if MIN_SIZE[arch] is not None:
        with pytest.raises(ValueError, match=f"{arch} cannot take input"):
            models.check_input(arch, c, (size, size - 1), 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"neuron": "if"}, r"neuron must be one of \('relu', 'qcfs', 'lif'\); got 'if'"),
        ({"norm": "ln"}, r"norm must be one of \('bn', 'tebn'\); got 'ln'"),
        ({"norm": "tebn"}, "norm='tebn' needs T"),
        ({"neuron": "qcfs", "levels": 0}, r"levels \(QCFS L\) must be an integer >= 1; got 0"),
        ({"neuron": "lif", "reset": "zero"}, "reset.*'zero'"),
        ({"neuron": "lif", "threshold": 0.0}, "threshold must be a finite number > 0; got 0.0"),
    ],
)
def test_build_rejects_bad_layer_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.build("mnist-cnn", num_classes=10, in_channels=1, **kwargs)


def test_build_passes_neuron_parameters_through():
    net = models.build(
        "mnist-mlp",
        num_classes=10,
        in_channels=1,
        neuron="lif",
        decay=0.25,
        threshold=0.5,
        reset="soft",
    )
    lifs = [m for m in net.modules() if isinstance(m, LIF)]
    assert all(m.params.decay == 0.25 and m.params.reset == "soft" for m in lifs)
    assert all(m.threshold.item() == 0.5 for m in lifs)
    qnet = models.build("mnist-mlp", num_classes=10, in_channels=1, neuron="qcfs", levels=8)
    assert all(m.levels == 8 for m in qnet.modules() if isinstance(m, QCFS))
    tnet = models.build("dvs-cnn", num_classes=10, in_channels=2, norm="tebn", T=6)
    assert [m.p.numel() for m in tnet.modules() if isinstance(m, TEBN)] == [6, 6, 6]
