"""pyrealsense2 import without system packages, and telling a camera without udev rules from no camera."""

import os
import subprocess
import sys

from facecap.camera_access import (
    access_problem,
    import_open3d,
    import_pyrealsense2,
    preload_libusb,
    usb_cameras,
)


def test_pyrealsense2_imports_with_system_or_wheel_libusb():
    assert preload_libusb() in ("system", "wheel")
    rs = import_pyrealsense2()
    assert hasattr(rs, "pipeline") and hasattr(rs, "software_device")


def test_fresh_interpreter_imports_pyrealsense2_through_facecap():
    # a new process: nothing preloaded yet, exactly what a user's first `facecap demo` does
    code = "from facecap.camera_access import import_pyrealsense2 as f; print(f().__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pyrealsense2"


def _fake_device(root, name, vendor, product_id, product, bus, devnum):
    d = root / name
    d.mkdir(parents=True)
    for k, v in (("idVendor", vendor), ("idProduct", product_id), ("product", product),
                 ("busnum", str(bus)), ("devnum", str(devnum))):  # fmt: skip
        (d / k).write_text(v + "\n")


def test_usb_scan_finds_realsense_and_reports_access(tmp_path):
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    _fake_device(sysfs, "2-1", "8086", "0ad3", "Intel(R) RealSense(TM) Depth Camera 415", 2, 5)
    _fake_device(sysfs, "2-2", "8086", "0b07", "", 2, 7)  # product string missing: known id
    _fake_device(sysfs, "1-1", "046d", "0825", "Webcam C270", 1, 3)  # not Intel
    _fake_device(sysfs, "1-2", "8086", "1234", "Intel Bluetooth", 1, 4)  # Intel, not a camera
    (dev / "002").mkdir(parents=True)
    (dev / "002" / "005").write_bytes(b"")
    (dev / "002" / "007").write_bytes(b"")
    os.chmod(dev / "002" / "005", 0o600)
    os.chmod(dev / "002" / "007", 0o000)
    cams = usb_cameras(sysfs, dev)
    assert [c["product_id"] for c in cams] == ["0ad3", "0b07"]
    assert cams[0]["product"].startswith("Intel(R) RealSense")
    assert cams[0]["node"] == str(dev / "002" / "005")
    assert cams[0]["accessible"]
    if os.geteuid() != 0:  # root may open anything
        assert not cams[1]["accessible"]
        assert "udev" in access_problem(cams) and str(dev / "002" / "007") in access_problem(cams)
    assert access_problem([dict(cams[0])]) is None
    assert access_problem([{**cams[0], "accessible": False}]).count("99-realsense-libusb.rules") == 2


def test_usb_scan_on_a_machine_without_sysfs(tmp_path):
    assert usb_cameras(tmp_path / "missing") == []


def test_devices_command_says_how_to_fix_access(monkeypatch, capsys):
    from facecap import camera_access, cli, realsense

    blocked = [{"product": "Intel(R) RealSense(TM) Depth Camera 435", "product_id": "0b07",
                "node": "/dev/bus/usb/002/009", "accessible": False}]  # fmt: skip
    monkeypatch.setattr(realsense, "list_devices", lambda: [])
    monkeypatch.setattr(camera_access, "usb_cameras", lambda *a, **k: blocked)
    assert cli.main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "udev" in out and "/dev/bus/usb/002/009" in out
    monkeypatch.setattr(camera_access, "usb_cameras", lambda *a, **k: [])
    assert cli.main(["devices"]) == 0
    assert "no RealSense camera connected" in capsys.readouterr().out


def test_open3d_imports_with_the_same_libusb():
    o3d = import_open3d()  # its Linux wheel links libusb-1.0.so.0 as well
    assert hasattr(o3d, "geometry")
