"""The documentation site: builds with warnings as errors, renders every public name, and the
porting guide maps every C# call of the Writer, Session Manager and Data Format Manager docs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import aiowriter

ROOT = Path(__file__).resolve().parents[1]
PORTING = (ROOT / "docs" / "porting.md").read_text()

# C# call (as in the Support Library docs) -> the aiowriter name it maps to (an attribute path).
CALLS = {
    # Writer Module
    "GetWritingPacketApi()": "PacketWriter",
    "writerApi.CreateService()": "PacketWriter",
    "writerService.WriteData(dataSource, stream, sessionKey, packet)": "PacketWriter.write_data",
    "writerService.WriteInfo(packet, infoType)": "PacketWriter.write_info",
    "writerService.Stop()": "PacketWriter.stop",
    "writerService.Initialise(); writerService.Start();": "PacketWriter.start",
    "InfoType.SessionInfo": "InfoType.SESSION_INFO",
    "InfoType.DataFormatInfo": "InfoType.DATA_FORMAT_INFO",
    "InfoType.Other": "InfoType.OTHER",
    "InfoType.Unspecified": "InfoType.UNSPECIFIED",
    "InfoType.SystemStatus": "InfoType.SYSTEM_STATUS",
    "msg.ToByteString()": "open_data.Packet",
    "Id = packetId++": "open_data.Packet",
    "PeriodicDataPacket.Parser.ParseFrom(bytes)": "open_data.PeriodicDataPacket.parse",
    "result.Success": "ApiResult.success",
    "result.Message": "ApiResult.message",
    "result.Data": "ApiResult.data",
    # Session Manager Module
    "GetSessionManagerApi().CreateService()": "SessionManager",
    "sessionService.Initialise(); sessionService.Start();": "SessionManager.start",
    "sessionService.Stop()": "SessionManager.close",
    "CreateNewSession(new SessionCreationDto(": "SessionManager.create_new_session",
    "GetSessionInfo(dataSource, sessionKey)": "SessionManager.get_session_info",
    "GetAllSessions()": "SessionManager.get_all_sessions",
    "UpdateIdentifier(dataSource, sessionKey, newIdentifier)": "SessionManager.update_identifier",
    "UpdateSessionDetails(dataSource, sessionKey, sessionDetails)": (
        "SessionManager.update_session_details"
    ),
    "AddAssociateSession(dataSource, sessionKey, addingAssociateKey)": (
        "SessionManager.add_associate_session"
    ),
    "EndSession(dataSource, sessionKey)": "SessionManager.end_session",
    "LiveSessionStarted += handler": "SessionStarted",
    "LiveSessionStateChange += handler": "SessionUpdated",
    "LiveSessionEnded += handler": "SessionEnded",
    "NewAssociationDetected += handler": "SessionAssociated",
    "Historical": "SessionInfo.completed",
    # Data Format Manager Module
    "GetDataFormatManagerApi().CreateService()": "DataFormatManager",
    "formatService.Initialise(); formatService.Start();": "DataFormatManager.start",
    "formatService.Stop()": "DataFormatManager.close",
    "GetParameterDataFormatId(dataSource, parameterList)": (
        "DataFormatManager.get_parameter_data_format_id"
    ),
    "GetParametersList(dataSource, dataFormatId)": "DataFormatManager.get_parameters_list",
    "GetEventDataFormatId(dataSource, eventName)": "DataFormatManager.get_event_data_format_id",
    "GetEvent(dataSource, dataFormatId)": "DataFormatManager.get_event",
    "GetDataSourceDataFormatInfo(dataSource)": (
        "DataFormatManager.get_data_source_data_format_info"
    ),
    "DataFormatInfoUpdated += handler": "FormatUpdated",
}


def _resolve(path: str) -> object:
    obj: object = aiowriter
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _rows() -> list[str]:
    return [line for line in PORTING.splitlines() if line.startswith("| ")]


@pytest.mark.parametrize("csharp", sorted(CALLS))
def test_porting_guide_maps_every_call_side_by_side(csharp: str) -> None:
    target = CALLS[csharp]
    _resolve(target)  # the aiowriter side exists
    short = target.rsplit(".", 1)[-1]
    rows = [r for r in _rows() if csharp in r]
    assert rows, f"no row of the porting guide shows the C# call {csharp!r}"
    assert any(short in r.split("|")[2] for r in rows), (
        f"the row of {csharp!r} does not name {short!r} in its aiowriter column"
    )


def test_porting_guide_covers_units_main_stream_and_the_complete_example() -> None:
    assert "nanoseconds" in PORTING
    assert "10_000_000" in PORTING
    assert '"Main"' in PORTING
    assert "bytes(msg)" in PORTING
    assert '--8<-- "tests/_data_publisher.py:publisher"' in PORTING


@pytest.mark.slow
def test_site_builds_strict_with_the_whole_api(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    reference = "".join(p.read_text() for p in (site / "reference").rglob("*.html"))
    anchors = set(re.findall(r'id="aiowriter\.([A-Za-z_]\w*)"', reference))
    public = set(aiowriter.__all__) - {"open_data", "packets"}
    assert public <= anchors, f"not in the API reference: {sorted(public - anchors)}"
    assert 'id="aiowriter.PacketWriter.write_data"' in reference
    assert "PeriodicDataPacket" in (site / "reference" / "open-data" / "index.html").read_text()
    porting = (site / "porting" / "index.html").read_text()
    assert "DataPublisher" in porting  # the tested port, included from the test helper
    bench = (site / "benchmarks" / "index.html").read_text()
    assert 'src="results/throughput.png"' in bench
    assert (site / "benchmarks" / "results" / "throughput.png").stat().st_size > 1000
    assert ":class:" not in reference  # reST roles are rendered, not shown
