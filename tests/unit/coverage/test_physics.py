"""The range model against hand-computed cases and the ISO tables."""

from __future__ import annotations

import numpy as np
import pytest

from sed.coverage.physics import (
    DEFAULT_CLASSES,
    RangeModel,
    air_absorption_db_per_km,
    barrier_attenuation_db,
    received_level_db,
    spreading_loss_db,
)

#: Exact mid-band frequencies of the octave bands 63 Hz-8 kHz (base-10 series, IEC 61260).
OCTAVE_MIDBANDS_HZ = 1000.0 * 10.0 ** (np.arange(-12, 10, 3) / 10.0)
#: ISO 9613-2:1996 Table 2 (computed there from ISO 9613-1), dB/km, rows as printed:
#: (temperature °C, relative humidity %) -> octave bands 63, 125, 250, 500, 1k, 2k, 4k, 8k.
ISO_9613_2_TABLE_2 = {
    (10.0, 70.0): [0.1, 0.4, 1.0, 1.9, 3.7, 9.7, 32.8, 117.0],
    (20.0, 70.0): [0.1, 0.3, 1.1, 2.8, 5.0, 9.0, 22.9, 76.6],
    (30.0, 70.0): [0.1, 0.3, 1.0, 3.1, 7.4, 12.7, 23.1, 59.3],
    (15.0, 20.0): [0.3, 0.6, 1.2, 2.7, 8.2, 28.2, 88.8, 202.0],
    (15.0, 50.0): [0.1, 0.5, 1.2, 2.2, 4.2, 10.8, 36.2, 129.0],
    (15.0, 80.0): [0.1, 0.3, 1.1, 2.4, 4.1, 8.3, 23.7, 82.8],
}


def test_spreading_loss_is_6_db_per_doubling_from_1_m() -> None:
    loss = spreading_loss_db(distance_m=np.array([1.0, 2.0, 10.0, 100.0, 1000.0]))
    np.testing.assert_allclose(loss, [0.0, 6.0206, 20.0, 40.0, 60.0], atol=1e-4)


def test_spreading_loss_does_not_extrapolate_inside_1_m() -> None:
    np.testing.assert_array_equal(spreading_loss_db(distance_m=np.array([0.0, 0.5])), [0.0, 0.0])


@pytest.mark.parametrize(("conditions", "table_row"), ISO_9613_2_TABLE_2.items())
def test_air_absorption_matches_iso_9613_2_table_2(conditions: tuple[float, float], table_row: list[float]) -> None:
    temperature_c, humidity_pct = conditions
    alpha = air_absorption_db_per_km(
        frequency_hz=OCTAVE_MIDBANDS_HZ, temperature_c=temperature_c, relative_humidity_pct=humidity_pct
    )
    # the table is rounded to 0.1 dB/km below 10 dB/km and to 3 significant figures above
    np.testing.assert_allclose(alpha, table_row, rtol=0.006, atol=0.051)


def test_air_absorption_at_1_khz_20_c_70_pct_is_iso_9613_1_value() -> None:
    # ISO 9613-1:1993 Table 1, 20 °C, 70 % RH, 1 kHz: 4.99 dB/km (computed here to 4.98)
    alpha = air_absorption_db_per_km(frequency_hz=1000.0, temperature_c=20.0, relative_humidity_pct=70.0)
    assert float(alpha) == pytest.approx(4.99, abs=0.02)


def test_barrier_is_iso_9613_2_single_diffraction() -> None:
    # 1 kHz: lambda = 0.343 m; z = 0.5 m -> 10 log10(3 + 20 * 0.5 / 0.343) = 15.07 dB
    z = np.array([0.5, 0.01, 1e-9])
    dz = barrier_attenuation_db(path_difference_m=z, frequency_hz=1000.0)
    expected = 10.0 * np.log10(3.0 + 20.0 * z / (343.0 / 1000.0))
    np.testing.assert_allclose(dz, expected, rtol=1e-12)
    assert dz[0] == pytest.approx(15.07, abs=0.01)
    assert dz[2] == pytest.approx(4.77, abs=0.01)  # grazing: 10 log10(3)


def test_barrier_is_capped_and_zero_on_a_clear_path() -> None:
    dz = barrier_attenuation_db(path_difference_m=np.array([0.0, -3.0, 5.0, 50.0]), frequency_hz=1000.0)
    np.testing.assert_array_equal(dz, [0.0, 0.0, 20.0, 20.0])
    assert barrier_attenuation_db(path_difference_m=np.array([50.0]), frequency_hz=1000.0, cap_db=25.0)[0] == 25.0


def test_received_level_sums_every_term_by_hand() -> None:
    model = RangeModel(excess_db_per_km=3.0, temperature_c=20.0, relative_humidity_pct=70.0)
    level = received_level_db(
        source_level_db=125.0,
        distance_m=np.array([500.0]),
        frequency_hz=1000.0,
        path_difference_m=np.array([0.5]),
        model=model,
    )
    alpha = float(air_absorption_db_per_km(frequency_hz=1000.0, temperature_c=20.0, relative_humidity_pct=70.0))
    by_hand = 125.0 - 20.0 * np.log10(500.0) - (alpha + 3.0) * 0.5 - 10.0 * np.log10(3.0 + 20.0 * 0.5 / 0.343)
    assert level[0] == pytest.approx(by_hand, abs=1e-9)
    assert level[0] == pytest.approx(125.0 - 53.98 - 3.99 - 15.07, abs=0.02)


def test_received_level_without_buildings_ignores_screening() -> None:
    model = RangeModel()
    distance = np.array([10.0, 100.0, 1000.0])
    none = received_level_db(
        source_level_db=100.0, distance_m=distance, frequency_hz=2000.0, path_difference_m=None, model=model
    )
    clear = received_level_db(
        source_level_db=100.0, distance_m=distance, frequency_hz=2000.0, path_difference_m=np.zeros(3), model=model
    )
    np.testing.assert_array_equal(none, clear)
    assert np.all(np.diff(none) < 0)


def test_default_classes_are_keyed_by_their_label_with_positive_band() -> None:
    assert set(DEFAULT_CLASSES) == {"gunshot", "scream", "glass_break"}
    for label, acoustics in DEFAULT_CLASSES.items():
        assert acoustics.label == label
        assert acoustics.frequency_hz > 0
        assert 80.0 < acoustics.source_level_db < 140.0
