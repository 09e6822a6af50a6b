import pytest

from sftasks.errors import LengthError
from sftasks.lengths import format_length, lower_bound, parse_length, parse_lengths


@pytest.mark.parametrize("text,tokens", [("4k", 4096), ("64K", 65536), ("1m", 1048576), ("4m", 4194304),
                                         ("1000", 1000), (" 128k ", 131072), (65536, 65536)])
def test_parse_length(text, tokens):
    assert parse_length(text) == tokens


@pytest.mark.parametrize("bad", ["64q", "-1", "0", "", "k", "1.5k", "4 kk", 0, -5, True, "1g"])
def test_malformed_lengths_are_refused(bad):
    with pytest.raises(LengthError):
        parse_length(bad)


@pytest.mark.parametrize("tokens,name", [(4096, "4k"), (131072, "128k"), (1048576, "1m"), (1000, "1000"), (1536, "1536")])
def test_format_round_trips(tokens, name):
    assert format_length(tokens) == name
    assert parse_length(name) == tokens


def test_parse_lengths_keeps_order_and_drops_duplicates():
    assert parse_lengths("8k,4k,8192,1m") == [8192, 4096, 1048576]


def test_lower_bound_is_within_half_a_percent():
    for target in (1024, 4096, 131072, 4194304):
        lo = lower_bound(target)
        assert lo >= target * 0.995 and lo - 1 < target * 0.995
