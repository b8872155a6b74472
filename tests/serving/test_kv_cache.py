"""The decode loop's cache layers append in place and hold what transformers' concatenation holds."""

from __future__ import annotations


def _config(layers: int = 2):
    from transformers import LlamaConfig

    return LlamaConfig(num_hidden_layers=layers, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                       intermediate_size=64, vocab_size=64)  # fmt: skip


def test_growing_cache_keeps_what_concatenation_keeps_and_appends_in_place() -> None:
    import torch
    from transformers import DynamicCache

    from twin_core.llm.kv_cache import MIN_ROOM, growing_cache, growing_layer_class

    grown, plain = growing_cache(_config()), DynamicCache(config=_config())
    assert [type(x) for x in grown.layers] == [growing_layer_class()] * 2
    gen = torch.Generator().manual_seed(0)
    steps = [torch.randn(3, 2, n, 8, generator=gen) for n in (20, 1, 1, 1)]
    starts = []
    for step in steps:
        keys, values = grown.update(step, -step, 1)
        want_keys, want_values = plain.update(step, -step, 1)
        assert torch.equal(keys, want_keys) and torch.equal(values, want_values)
        starts.append(keys.data_ptr())
    assert len(set(starts)) == 1  # one buffer: no copy of the cache per step
    assert grown.get_seq_length(1) == 23 and grown.get_seq_length(0) == 0
    # past its room the buffer moves once, keeping the contents
    big = torch.randn(3, 2, MIN_ROOM, 8, generator=gen)
    keys, _ = grown.update(big, big, 1)
    assert keys.data_ptr() != starts[0]
    assert torch.equal(keys, torch.cat([*steps, big], dim=-2))


def test_assigned_tensors_are_never_written_to() -> None:
    import torch

    from twin_core.llm.kv_cache import growing_layer_class

    layer = growing_layer_class()()
    layer.update(torch.zeros(2, 2, 4, 8), torch.zeros(2, 2, 4, 8))
    big = torch.arange(2 * 2 * 10 * 8, dtype=torch.float32).view(2, 2, 10, 8)
    kept = big.clone()
    # the engine drops rows and leading padding by assigning a slice: here a view into a larger tensor
    layer.keys, layer.values = big[:, :, :6], big[:, :, :6]
    assert layer.get_seq_length() == 6
    new = torch.full((2, 2, 1, 8), -1.0)
    keys, values = layer.update(new, new)
    assert torch.equal(big, kept)  # position 6 of ``big`` was not overwritten
    assert torch.equal(keys, torch.cat([kept[:, :, :6], new], dim=-2)) and torch.equal(values, keys)
    # rows merged by concatenation (another batch size) move to a buffer of their own as well
    layer.keys = layer.values = torch.cat([keys, keys], dim=0)
    keys, _ = layer.update(torch.ones(4, 2, 1, 8), torch.ones(4, 2, 1, 8))
    assert keys.shape == (4, 2, 8, 8) and torch.equal(keys[:, :, -1], torch.ones(4, 2, 8))


def test_prefix_states_are_copied_not_written() -> None:
    import torch

    from twin_core.llm.prefix_cache import cache_from

    model = type("M", (), {"config": _config()})()
    prefix = [(torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)) for _ in range(2)]
    kept = [(k.clone(), v.clone()) for k, v in prefix]
    cache = cache_from(model, prefix, 3, grow=True)
    keys, _ = cache.update(torch.zeros(3, 2, 1, 8), torch.zeros(3, 2, 1, 8), 0)
    assert keys.shape == (3, 2, 6, 8) and torch.equal(keys[:, :, :5], prefix[0][0].expand(3, -1, -1, -1))
    assert all(torch.equal(k, k0) and torch.equal(v, v0) for (k, v), (k0, v0) in zip(prefix, kept, strict=True))


def test_restack_pads_rows_to_one_width_in_one_buffer_with_room() -> None:
    import torch

    from twin_core.llm.kv_cache import MIN_ROOM, growing_layer_class, restack

    old = torch.arange(3 * 2 * 5 * 4, dtype=torch.float32).view(3, 2, 5, 4)
    new = torch.full((1, 2, 7, 4), -1.0)
    layer = growing_layer_class()()  # fresh: restack initialises it
    restack(layer, [(old[0:1, :, 1:], -old[0:1, :, 1:]), (old[2:3], -old[2:3]), (new, 2 * new)], 7)
    keys, values = layer.keys, layer.values
    assert keys.shape == (3, 2, 7, 4) and layer.get_seq_length() == 7
    zeros = torch.zeros(2, 4)
    want = [torch.cat([zeros.new_zeros(2, 3, 4), old[0, :, 1:]], 1), torch.cat([zeros.new_zeros(2, 2, 4), old[2]], 1)]
    assert torch.equal(keys[0], want[0]) and torch.equal(keys[1], want[1]) and torch.equal(keys[2], new[0])
    assert torch.equal(values[0], -want[0]) and torch.equal(values[2], 2 * new[0])
    start = keys.data_ptr()
    for _ in range(MIN_ROOM):  # the next appends fill the room in place
        keys, _ = layer.update(torch.ones(3, 2, 1, 4), torch.ones(3, 2, 1, 4))
    assert keys.data_ptr() == start and keys.shape == (3, 2, 7 + MIN_ROOM, 4)
    assert torch.equal(keys[1, :, :7], want[1])


def test_restack_keeps_only_the_room_asked_for_and_grows_past_it() -> None:
    import torch

    from twin_core.llm.kv_cache import growing_layer_class, restack

    layer = growing_layer_class()()
    restack(layer, [(torch.ones(2, 2, 5, 4), torch.ones(2, 2, 5, 4))], 5, room=3)
    start = layer.keys.data_ptr()
    for step in range(3):  # the room asked for: in place
        keys, _ = layer.update(torch.full((2, 2, 1, 4), float(step)), torch.zeros(2, 2, 1, 4))
        assert keys.data_ptr() == start
    keys, _ = layer.update(torch.full((2, 2, 1, 4), 3.0), torch.zeros(2, 2, 1, 4))  # past it: moved, nothing lost
    assert keys.data_ptr() != start and keys.shape == (2, 2, 9, 4)
    assert torch.equal(keys[0, 0, :, 0], torch.tensor([1.0] * 5 + [0.0, 1.0, 2.0, 3.0]))


def test_the_cache_goes_by_the_keyword_the_model_forward_takes() -> None:
    # transformers 5.25 takes ``cache`` (``past_key_values`` deprecated); 5.17, on the lent GPUs, takes only
    # ``past_key_values``, and its forward's **kwargs swallowed ``cache``: the model built a cache of its own,
    # the continuous engine's rows failed and the perplexity's shared start was silently dropped.
    from transformers import LlamaForCausalLM

    from twin_core.llm.kv_cache import cache_argument

    class Newer:
        def forward(self, input_ids=None, cache=None, **kwargs):  # noqa: ANN001, ANN003, ANN202
            return cache

    class Older:
        def forward(self, input_ids=None, past_key_values=None, **kwargs):  # noqa: ANN001, ANN003, ANN202
            return past_key_values

    class Wrapper:  # PEFT's PeftModel: forward(*args, **kwargs), the model it wraps behind get_base_model
        def __init__(self, base: object) -> None:
            self.base = base

        def get_base_model(self) -> object:
            return self.base

        def forward(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            return None

    marker = object()
    assert cache_argument(Newer(), marker) == {"cache": marker}
    assert cache_argument(Older(), marker) == {"past_key_values": marker}
    assert cache_argument(Wrapper(Older()), marker) == {"past_key_values": marker}
    assert cache_argument(Wrapper(Newer()), marker) == {"cache": marker}
    import inspect

    tiny = LlamaForCausalLM(_config(1))

    (keyword,) = cache_argument(tiny, marker)
    assert keyword in inspect.signature(type(tiny).forward).parameters  # the installed transformers' own keyword
