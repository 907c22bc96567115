"""MP3 encoding with LAME (8 and 16 kHz, mono and stereo) and decoding back with PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from siprec_recorder.errors import LocalProtocolError
from siprec_recorder.storage.mp3 import _walk_frames, decode_mp3, encode_mp3, mp3_frames


def _tone(rate: int, seconds: float, freq: float) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return (0.4 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _corr(a: npt.NDArray[np.int16], b: npt.NDArray[np.int16]) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n].astype(float), b[:n].astype(float))[0, 1])


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("seconds", [0.5, 4.0])
def test_round_trip_duration_and_shape(rate: int, channels: int, seconds: float) -> None:
    left = _tone(rate, seconds, 440.0)
    pcm = left[:, None] if channels == 1 else np.stack([left, _tone(rate, seconds, 650.0)], 1)
    data = encode_mp3(pcm, rate, 32)
    decoded, out_rate = decode_mp3(data)
    assert out_rate == rate  # LAME must not resample (it would at 16 kHz stereo 16 kbit/s)
    assert decoded.dtype == np.int16 and decoded.shape[1] == channels
    assert abs(len(decoded) - len(pcm)) / len(pcm) <= 0.02
    for ch in range(channels):
        assert _corr(decoded[:, ch], pcm[:, ch]) >= 0.9  # aligned: delay is trimmed
    if channels == 2:
        assert _corr(decoded[:, 0], pcm[:, 1]) < 0.5  # channels not swapped or mixed


@pytest.mark.parametrize("rate,bitrate", [(8000, 8), (8000, 16), (16000, 16), (16000, 64)])
def test_exact_length_thanks_to_info_tag(rate: int, bitrate: int) -> None:
    pcm = _tone(rate, 3.01, 300.0)
    data = encode_mp3(pcm, rate, bitrate)
    assert data[:2] in (b"\xff\xe3", b"\xff\xf3")  # MPEG-2.5 (8 kHz) / MPEG-2 (16 kHz)
    first = mp3_frames(data)[0]
    assert b"Info" in data[: first[1]] and b"LAME" in data[: first[1]]
    decoded, _ = decode_mp3(data)
    assert len(decoded) == len(pcm)


def test_bitrate_sets_size() -> None:
    pcm = _tone(8000, 10.0, 440.0)
    small = encode_mp3(pcm, 8000, 16)
    large = encode_mp3(pcm, 8000, 32)
    assert 0.9 < len(small) / (16000 / 8 * 10) < 1.1
    assert 0.9 < len(large) / (32000 / 8 * 10) < 1.1


def test_long_input_encodes_in_chunks(tmp_path: Path) -> None:
    pcm = np.tile(_tone(8000, 1.0, 500.0), 200)[:, None]  # 200 s: several chunks
    data = encode_mp3(pcm, 8000, 16)
    path = tmp_path / "long.mp3"
    path.write_bytes(data)
    decoded, rate = decode_mp3(path)
    assert rate == 8000 and len(decoded) == len(pcm)
    assert _corr(decoded[-8000:, 0], pcm[-8000:, 0]) >= 0.9


def test_one_dimensional_and_empty_input() -> None:
    mono = _tone(8000, 0.3, 440.0)
    decoded, _ = decode_mp3(encode_mp3(mono, 8000, 32))
    assert decoded.shape == (len(mono), 1)
    assert encode_mp3(np.zeros((0, 1), dtype=np.int16), 8000, 32) == b""


def test_bad_input_refused() -> None:
    with pytest.raises(LocalProtocolError):
        encode_mp3(np.zeros((10, 3), dtype=np.int16), 8000, 32)
    with pytest.raises(LocalProtocolError):
        encode_mp3(np.zeros((10, 1), dtype=np.float32), 8000, 32)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_very_short_files_decode(rate: int) -> None:
    """A few frames are too few for FFmpeg's format probe: decode_mp3 names the format."""
    pcm = (np.random.default_rng(1).standard_normal((100, 2)) * 1000).astype(np.int16)
    decoded, out_rate = decode_mp3(encode_mp3(pcm, rate, 160))
    assert out_rate == rate and decoded.shape == (100, 2)


@pytest.mark.parametrize(
    "rate,bitrate,channels",
    [(8000, 32, 1), (16000, 32, 1), (16000, 32, 2), (8000, 8, 1), (44100, 128, 2), (22050, 40, 1)],
)
def test_frame_list_matches_a_walk_of_every_header(rate: int, bitrate: int, channels: int) -> None:
    """The one-comparison path for uniform CBR frames gives what the header walk gives,
    with and without the Info tag in front, and for rates whose frames need padding."""
    left = _tone(rate, 2.5, 440.0)
    pcm = left[:, None] if channels == 1 else np.stack([left, _tone(rate, 2.5, 650.0)], 1)
    tagged = encode_mp3(pcm, rate, bitrate)
    bare = tagged[mp3_frames(tagged)[0][1] :]
    for data in (tagged, bare):
        frames = mp3_frames(data)
        assert frames == _walk_frames(data)
        assert sum(size for _, size in frames) == len(data)


def test_a_damaged_frame_header_is_still_refused() -> None:
    data = bytearray(encode_mp3(_tone(8000, 2.0, 440.0), 8000, 32))
    first = mp3_frames(bytes(data))[0][1]
    data[first + 288 * 5] = 0x00  # sync of the sixth audio frame
    with pytest.raises(LocalProtocolError):
        mp3_frames(bytes(data[first:]))
