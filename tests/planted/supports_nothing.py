"""Hostile backend: a cross_entropy that always raises NotImplementedError (every check is then
"unsupported"). A gate that counted only failures used to pass it: "PASSED, none failing"."""


def cross_entropy(input, target, **kwargs):
    raise NotImplementedError("cross_entropy is not implemented here")
