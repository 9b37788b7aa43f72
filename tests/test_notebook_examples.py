"""The notebook's three example cells, with only the import changed, give its numbers."""

from autodiff import NodeAdd, NodeInput, NodeMult, NodeOutput, ngrad, print_all, run


def test_add_of_x_and_x_at_2_has_gradient_2(capsys):
    x = NodeInput("x")
    add = NodeAdd("add", [x, x])
    out = NodeOutput("out", [add])
    nodes = [x, add, out]
    fd = {x: 2}

    numeric = ngrad(fd, nodes)
    run(fd, nodes)
    print_all(fd, nodes)

    assert out.value == 4
    assert x.gradients[x] == 2
    assert abs(numeric[x] - 2) < 1e-8
    assert "x 2" in capsys.readouterr().out


def test_x_times_x_times_x_at_4_has_gradient_48():
    x = NodeInput("x")
    mul = NodeMult("mul", [x, x])
    mul2 = NodeMult("mul2", [mul, x])
    out = NodeOutput("out", [mul2])
    nodes = [x, mul, mul2, out]
    fd = {x: 4}

    numeric = ngrad(fd, nodes)
    run(fd, nodes)

    assert out.value == 64
    assert x.gradients[x] == 48
    assert mul2.gradients[mul] == 4 and mul2.gradients[x] == 16
    assert abs(numeric[x] - 48) < 1e-6


def test_x_times_a_at_12_and_4_has_gradients_4_and_12():
    x = NodeInput("x")
    a = NodeInput("a")
    mul = NodeMult("mul", [x, a])
    out = NodeOutput("out", [mul])
    nodes = [x, a, mul, out]
    fd = {x: 12, a: 4}

    numeric = ngrad(fd, nodes)
    run(fd, nodes)

    assert out.value == 48
    assert x.gradients[x] == 4
    assert a.gradients[a] == 12
    assert abs(numeric[x] - 4) < 1e-8 and abs(numeric[a] - 12) < 1e-8
