"""The images section: off by default, its YAML the dataclass defaults, each value checked
at load with its key path."""

from pathlib import Path

import pytest

from conf import ConfigError, load_config
from conf.config import ImagesConfig
from tests.unit.conf.test_config import write


def test_images_are_off_by_default_and_the_yaml_spells_out_the_defaults() -> None:
    images = load_config().images
    assert images == ImagesConfig()
    assert not images.enabled and not images.text_counts_without_image
    assert images.allowed_hosts == () and not images.allow_private_addresses  # no web host


def test_a_full_images_section_loads(tmp_path: Path) -> None:
    text = (
        "images:\n  enabled: true\n  schemes: [s3, https]\n"
        "  allowed_hosts: [images.example.com, 203.0.113.7, '2001:db8::1']\n"
        "  max_bytes: 1024\n  image_size: 32\n  text_counts_without_image: true\n"
    )
    images = load_config(write(tmp_path, text)).images
    assert images.schemes == ("s3", "https")
    assert images.allowed_hosts == ("images.example.com", "203.0.113.7", "2001:db8::1")
    assert (images.max_bytes, images.image_size, images.enabled) == (1024, 32, True)


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ("schemes: [file, ftp]", r"images: schemes\[1\] must be one of file, s3, gs"),
        ("allowed_hosts: ['https://images.example.com']", r"images: allowed_hosts\[0\]"),
        ("allowed_hosts: ['images.example.com:8080']", r"images: allowed_hosts\[0\]"),
        ("allowed_hosts: [Images.Example.com]", r"images: allowed_hosts\[0\] must be a lower"),
        ("max_bytes: 0", r"images: max_bytes must be an int >= 1"),
        ("max_pixels: -1", r"images: max_pixels must be an int >= 1"),
        ("image_size: 0", r"images: image_size must be an int >= 1"),
        ("fetch_concurrency: 0", r"images: fetch_concurrency must be an int >= 1"),
        ("timeout_s: 0", r"images: timeout_s must be > 0"),
        ("fetch_num_cpus: -0.5", r"images: fetch_num_cpus must be >= 0"),
        ("enabled: maybe", r"images\.enabled: expected bool"),
        ("allowed: []", r"images\.allowed: unknown key"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, section: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, f"images:\n  {section}\n"))
