"""The Excel export: opened with openpyxl, as a user's spreadsheet program would read it."""

import datetime
import io
import uuid

import openpyxl
import pytest
from django.test import RequestFactory
from django.utils import translation

from images import exports
from images.exports import ImageExport
from images.filters import ImageFilter
from images.selectors import images_visible


def _workbook(export):
    data = b"".join(export.chunks())
    return openpyxl.load_workbook(io.BytesIO(data))


def _filtered(tenant, params):
    request = RequestFactory().get("/")
    request.tenant, request.membership = tenant, None
    return ImageFilter(params, queryset=images_visible(tenant=tenant, membership=None), request=request).qs


@pytest.fixture
def images(tenant, make_image):
    return [
        make_image(
            tenant, name="centos", size=21474836480, os_type="linux", labels=["prod"], cloud_init=True
        ),
        make_image(
            tenant, name="windows", size=1234, os_type="windows", platform="Windows", os_version="2019"
        ),
        make_image(tenant, name="broken", status="failed", os_type="linux"),
    ]


def test_headers_types_frozen_header_and_autofilter(tenant, images):
    book = _workbook(ImageExport(queryset=_filtered(tenant, {"ordering": "name"}), tenant=tenant))
    sheet = book.worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    header = rows[0]
    assert header[:4] == ("Name", "Resource ID", "Status", "Progress (%)")
    assert "Size (bytes)" in header and "Created" in header
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(header))}4"
    data = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert list(data) == ["broken", "centos", "windows"]
    centos = data["centos"]
    assert centos["Size (bytes)"] == 21474836480 and isinstance(centos["Size (bytes)"], int)
    assert isinstance(centos["Created"], datetime.datetime)
    assert abs(centos["Created"] - images[0].created_at.replace(tzinfo=None)) < datetime.timedelta(seconds=1)
    assert centos["Status"] == "Available" and data["broken"]["Status"] == "Import failed"
    assert centos["Resource ID"] == str(images[0].pk)
    assert centos["Labels"] == "prod" and centos["Feature support"] == "cloud-init"
    assert data["windows"]["Operating system"] == "Windows 2019 x86_64"
    created_cell = sheet.cell(row=2, column=header.index("Created") + 1)
    assert created_cell.is_date


def test_headers_and_values_follow_the_users_language(tenant, images):
    with translation.override("zh-hans"):
        export = ImageExport(queryset=_filtered(tenant, {"status": "available"}), tenant=tenant)
    # The rows are produced later, as a streaming response is, under whatever language is active then.
    with translation.override("en"):
        book = _workbook(export)
    sheet = book.worksheets[0]
    assert sheet.title == "自制镜像"
    header = [cell.value for cell in sheet[1]]
    assert header[0] == "名称"


def test_the_filter_decides_the_rows(tenant, other_tenant, images, make_image):
    make_image(other_tenant, name="not-ours")
    book = _workbook(ImageExport(queryset=_filtered(tenant, {"os_type": "linux"}), tenant=tenant))
    names = [row[0] for row in book.worksheets[0].iter_rows(min_row=2, values_only=True)]
    assert sorted(names) == ["broken", "centos"]


@pytest.mark.parametrize("dangerous", ["=1+2", "+cmd", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_cells_that_would_start_a_formula_are_neutralised(tenant, make_image, dangerous):
    make_image(tenant, name=dangerous, description=dangerous, labels=[dangerous])
    sheet = _workbook(ImageExport(queryset=_filtered(tenant, {}), tenant=tenant)).worksheets[0]
    header = [cell.value for cell in sheet[1]]
    row = sheet[2]
    for column in ("Name", "Remarks", "Labels"):
        cell = row[header.index(column)]
        assert cell.data_type == "s", column
        assert cell.value == "'" + dangerous, column


def test_summary_sheet_counts_by_status_os_type_and_storage(tenant, images):
    book = _workbook(ImageExport(queryset=_filtered(tenant, {}), tenant=tenant))
    assert book.sheetnames == ["Images", "Summary"]
    rows = [row for row in book["Summary"].iter_rows(values_only=True)]
    assert rows[0] == ("Images exported", 3)
    pairs = {(a, b) for a, b, *_ in [(*row, None)[:2] for row in rows if row]}
    assert {("Available", 2), ("Import failed", 1), ("Linux", 2), ("Windows", 1), ("None", 3)} <= pairs


def test_bytes_leave_before_the_last_row_is_written(tenant, make_image, monkeypatch):
    monkeypatch.setattr(exports, "FLUSH_BYTES", 512)
    for n in range(200):
        # Text that does not compress away, so the zip has bytes to hand over early.
        make_image(tenant, name=f"image-{n:03d}", description=" ".join(uuid.uuid4().hex for _ in range(8)))
    export = ImageExport(queryset=_filtered(tenant, {}), tenant=tenant)
    chunks = export.chunks()
    first = next(chunks)
    assert first.startswith(b"PK")
    assert 0 < export.rows_written < 200
    rest = b"".join(chunks)
    assert export.rows_written == 200
    book = openpyxl.load_workbook(io.BytesIO(first + rest))
    assert book.worksheets[0].max_row == 201
