"""tegrastats parsing on recorded-style lines of every JetPack format, and the background reader."""
import sys
import time

import pytest

from runtime import tegrastats
from runtime.tegrastats import TegrastatsReader, average_in_windows, energy_per_frame_mj, parse_line

# JetPack 4 (L4T R32): rails in mW without a unit, "current/average".
TX2_JP4 = ("RAM 2228/7850MB (lfb 1107x4MB) CPU [3%@345,off,off,2%@345,1%@345,1%@345] EMC_FREQ 0% "
           "GR3D_FREQ 0% PLL@41C MCPU@41C PMIC@100C Tboard@37C GPU@39.5C BCPU@41C thermal@40.1C "
           "Tdiode@38.75C VDD_SYS_GPU 152/152 VDD_SYS_SOC 686/686 VDD_4V0_WIFI 0/0 VDD_IN 2781/2781 "
           "VDD_SYS_CPU 229/229 VDD_SYS_DDR 609/609")
NANO_JP4 = ("RAM 1487/3964MB (lfb 124x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
            "CPU [8%@1479,4%@1479,3%@1479,2%@1479] EMC_FREQ 3%@1600 GR3D_FREQ 0%@921 APE 25 PLL@30C "
            "CPU@32.5C PMIC@100C GPU@31C AO@38.5C thermal@31.75C POM_5V_IN 2110/2034 POM_5V_GPU 40/40 "
            "POM_5V_CPU 321/298")
AGX_XAVIER_JP4 = ("RAM 1565/15823MB (lfb 3202x4MB) SWAP 0/7911MB (cached 0MB) "
                  "CPU [2%@1190,1%@1190,0%@1190,0%@1190,off,off,off,off] EMC_FREQ 0% GR3D_FREQ 0% "
                  "AO@39.5C GPU@39.5C Tdiode@42.25C PMIC@100C AUX@39C CPU@40.5C thermal@40.05C "
                  "Tboard@39C GPU 0/0 CPU 311/311 SOC 1087/1087 CV 0/0 VDDRQ 310/310 SYS5V 1518/1518")
# JetPack 5/6 (R35/R36): "NNNmW/NNNmW", often with a date prefix.
XAVIER_NX_JP5 = ("11-02-2023 14:05:31 RAM 2133/6854MB (lfb 8x4MB) SWAP 0/3427MB (cached 0MB) "
                 "CPU [4%@1190,2%@1190,1%@1190,1%@1190,off,off] EMC_FREQ 0%@1600 GR3D_FREQ 0%@114 "
                 "NVDEC off NVDLA0 off NVDLA1 off VIC_FREQ 0%@115 APE 150 AUX@32C CPU@34C "
                 "thermal@33.05C Tboard@33C AO@32.5C GPU@32.5C Tdiode@35.25C PMIC@50C "
                 "VDD_IN 5012mW/4890mW VDD_CPU_GPU_CV 612mW/598mW VDD_SOC 1417mW/1402mW")
AGX_ORIN_JP5 = ("RAM 3108/30536MB (lfb 6641x4MB) SWAP 0/15268MB (cached 0MB) "
                "CPU [1%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,off,off,off,off] "
                "EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305,305] VIC_FREQ 729 APE 233 CV0@-256C CPU@45.375C "
                "Tboard@34C SOC2@41.718C Tdiode@36.5C SOC0@41.281C CV1@-256C GPU@-256C tj@45.375C "
                "SOC1@41.968C CV2@-256C VDD_GPU_SOC 1583mW/1583mW VDD_CPU_CV 395mW/395mW "
                "VIN_SYS_5V0 2815mW/2815mW VDDQ_VDD2_1V8AO 503mW/503mW")
ORIN_NANO_JP6 = ("RAM 1856/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) "
                 "CPU [2%@729,1%@729,0%@729,0%@729,0%@729,1%@729] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305] "
                 "NVENC off NVDEC off NVJPG off NVJPG1 off VIC off OFA off APE 200 cpu@47.5C "
                 "soc2@46.843C soc0@46.093C gpu@47.031C tj@47.5C soc1@46.343C "
                 "VDD_IN 4556mW/4556mW VDD_CPU_GPU_CV 483mW/483mW VDD_SOC 1369mW/1369mW")
# JetPack 7: current/average/peak.
AGX_ORIN_JP7 = ("07-25-2026 09:08:28 RAM 20642/62817MB (lfb 1x2MB) CPU [23%@2201,10%@2201] "
                "EMC_FREQ 3%@3199 GR3D_FREQ 12%@[1300,1300] APE 174 cpu@52.968C/52.968C "
                "gpu@47.625C/47.625C VDD_GPU_SOC 5139mW/5139mW/5139mW "
                "VDD_CPU_CV 3268mW/3268mW/3268mW VIN_SYS_5V0 5500mW/5500mW/5500mW")


@pytest.mark.parametrize("line, total, source, rails", [
    (TX2_JP4, 2781, "VDD_IN", 6),
    (NANO_JP4, 2110, "POM_5V_IN", 3),
    (AGX_XAVIER_JP4, 0 + 311 + 1087 + 0 + 310 + 1518, "sum of rails", 6),
    (XAVIER_NX_JP5, 5012, "VDD_IN", 3),
    (AGX_ORIN_JP5, 1583 + 395 + 2815 + 503, "sum of rails", 4),
    (ORIN_NANO_JP6, 4556, "VDD_IN", 3),
    (AGX_ORIN_JP7, 5139 + 3268 + 5500, "sum of rails", 3),
])
def test_total_power_of_every_format(line, total, source, rails):
    parsed = parse_line(line)
    assert parsed["total_mw"] == pytest.approx(total)
    assert parsed["total_source"] == source
    assert len(parsed["rails"]) == rails, sorted(parsed["rails"])


def test_memory_and_swap_are_not_rails():
    for line in (TX2_JP4, NANO_JP4, AGX_XAVIER_JP4, AGX_ORIN_JP5):
        rails = parse_line(line)["rails"]
        assert not {"RAM", "SWAP", "IRAM"} & set(rails)


def test_current_average_and_peak():
    nano = parse_line(NANO_JP4)["rails"]["POM_5V_IN"]
    assert (nano["cur"], nano["avg"], nano["peak"]) == (2110, 2034, None)
    orin = parse_line(AGX_ORIN_JP7)["rails"]["VDD_CPU_CV"]
    assert (orin["cur"], orin["avg"], orin["peak"]) == (3268, 3268, 3268)
    assert parse_line(XAVIER_NX_JP5)["rails"]["VDD_SOC"]["avg"] == 1402


def test_other_fields():
    parsed = parse_line(TX2_JP4)
    assert parsed["ram_mb"] == (2228, 7850)
    assert parsed["gpu_load_pct"] == 0
    assert parsed["temps_c"]["GPU"] == 39.5
    assert parse_line(AGX_ORIN_JP5)["temps_c"]["CV0"] == -256


def test_lines_without_rails():
    assert parse_line("") is None
    assert parse_line("RAM 4722/7844MB (lfb 1x512kB) EMC_FREQ 2%@1866 GR3D_FREQ 10%@1300 APE 150") is None


def test_windows_and_energy():
    samples = [(0.0, 1000.0), (1.0, 2000.0), (2.0, 3000.0), (3.0, 9000.0)]
    assert average_in_windows(samples, [(0.5, 2.5)]) == (2500.0, 2)
    assert average_in_windows(samples, [(0.0, 0.1), (2.9, 3.1)]) == (5000.0, 2)
    assert average_in_windows(samples, [(5, 6)]) == (None, 0)
    assert average_in_windows(samples) == (3750.0, 4)
    # 5 W for 20 ms = 100 mJ
    assert energy_per_frame_mj(5000.0, 20.0) == pytest.approx(100.0)
    assert energy_per_frame_mj(None, 20.0) is None


def test_reader_on_a_recorded_stream():
    script = ("import sys, time\n"
              "for line in {!r}:\n"
              "    print(line); sys.stdout.flush(); time.sleep(0.05)\n").format(
        [TX2_JP4, "no rails here", ORIN_NANO_JP6, ORIN_NANO_JP6])
    reader = TegrastatsReader(command=[sys.executable, "-c", script])
    t0 = time.perf_counter()
    with reader:
        deadline = time.time() + 10
        while reader.lines < 4 and time.time() < deadline:
            time.sleep(0.02)
    t1 = time.perf_counter()
    assert reader.lines == 4
    assert [value for _, value in reader.samples] == [2781, 4556, 4556]
    assert reader.source == "VDD_IN"
    mean, count = reader.average_mw([(t0, t1)])
    assert count == 3 and mean == pytest.approx((2781 + 4556 * 2) / 3.0)


def test_reader_without_tegrastats(monkeypatch):
    monkeypatch.setattr(tegrastats, "available", lambda: None)
    with pytest.raises(OSError, match="tegrastats not found"):
        TegrastatsReader().start()
