"""The image list as an Excel workbook, streamed to the browser while it is being written.

openpyxl's write-only mode writes each sheet's XML to a temporary file and zips everything when the
workbook is saved, so nothing could be sent before the last row. Here the list sheet's XML goes straight
into its entry of a zip archive whose output is the HTTP response: the first bytes leave after the first
rows, memory stays flat whatever the number of rows, and no temporary file holds the list. The small
parts (styles, workbook, the summary sheet) are written by openpyxl's own ExcelWriter afterwards.
This leans on openpyxl 3.1's WorksheetWriter(ws, out=...) and ExcelWriter.write_worksheet; the export
tests open the result with openpyxl and would catch a change there.
"""

import datetime
import itertools
from collections import Counter
from collections.abc import Iterator
from zipfile import ZIP_DEFLATED, ZipFile

from django.conf import settings
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._writer import WorksheetWriter
from openpyxl.writer.excel import ExcelWriter

from tenants.models import Tenant

from .models import CANCELLED_LABEL, Image

CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Excel's last row is 1,048,576; one is the header.
MAX_ROWS = 1_048_575
# Stop adding rows well before the sheet's XML reaches the 2 GiB a plain zip entry can hold.
MAX_SHEET_BYTES = 1800 * 1024 * 1024
FLUSH_BYTES = 256 * 1024
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

# The values read per image, in the order `_row` uses them.
FIELDS = (
    "name",
    "id",
    "status",
    "progress",
    "encrypted",
    "cloud_init",
    "qemu_ga",
    "hot_upgrade",
    "os_type",
    "platform",
    "os_version",
    "architecture",
    "boot_mode",
    "project_group__name",
    "kind",
    "disk_format",
    "size",
    "virtual_size",
    "enabled",
    "sharing",
    "tenant_id",
    "tenant__name",
    "storage__name",
    "labels",
    "md5",
    "sha256",
    "description",
    "created_at",
    "failure_reason",
)


def neutralise(value: str) -> str:
    """A text cell that a spreadsheet would read as a formula gets a leading apostrophe (OWASP)."""
    if value and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _headers() -> list[tuple[str, int]]:
    """Column titles in the active language, with a width in characters."""
    return [
        (_("Name"), 32),
        (_("Resource ID"), 38),
        (_("Status"), 14),
        (_("Progress (%)"), 12),
        (_("Encrypted"), 10),
        (_("Feature support"), 28),
        (_("System type"), 12),
        (_("Operating system"), 26),
        (_("Platform"), 12),
        (_("OS version"), 12),
        (_("Architecture"), 12),
        (_("Boot mode"), 14),
        (_("Project group"), 18),
        (_("Image type"), 14),
        (_("Format"), 10),
        (_("Size (bytes)"), 16),
        (_("Virtual size (bytes)"), 18),
        (_("Enabled"), 10),
        (_("Sharing mode"), 22),
        (_("Owner tenant"), 16),
        (_("Image storage"), 18),
        (_("Labels"), 24),
        ("MD5", 34),
        ("SHA256", 66),
        (_("Remarks"), 40),
        (_("Created"), 20),
    ]


class _Sink:
    """The zip archive's output: bytes collect here until the response generator takes them."""

    def __init__(self):
        self.buffer = bytearray()

    def write(self, data) -> int:
        self.buffer += data
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


class _Counted:
    """Counts the bytes of the sheet's XML: a zip entry written as a stream must stay under 2 GiB
    (without forcing ZIP64, which some spreadsheet programs open with a warning)."""

    def __init__(self, out):
        self.out = out
        self.count = 0

    def write(self, data) -> int:
        self.count += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        pass


class _StreamedSheetWriter(ExcelWriter):
    """ExcelWriter that leaves out sheets whose XML has already been written into the archive."""

    def __init__(self, workbook, archive, streamed):
        super().__init__(workbook, archive)
        self._streamed = streamed

    def write_worksheet(self, ws):
        if ws not in self._streamed:
            return super().write_worksheet(ws)
        from openpyxl.drawing.spreadsheet_drawing import SpreadsheetDrawing

        ws._drawing = SpreadsheetDrawing()
        ws._drawing.charts = ws._charts
        ws._drawing.images = ws._images
        ws._rels = ws._writer._rels
        self.manifest.append(ws)


class ImageExport:
    """One export: the rows of `queryset` (already scoped and filtered), seen from `tenant`."""

    def __init__(self, *, queryset: QuerySet[Image], tenant: Tenant):
        self.queryset = queryset
        self.tenant = tenant
        self.language = translation.get_language()
        self.timezone = timezone.get_current_timezone()
        self.rows_written = 0

    def filename(self) -> str:
        stamp = timezone.localtime(timezone.now(), self.timezone).strftime("%Y%m%d-%H%M%S")
        return f"images-{stamp}.xlsx"

    def response(self) -> StreamingHttpResponse:
        response = StreamingHttpResponse(self.chunks(), content_type=CONTENT_TYPE)
        response["Content-Disposition"] = f'attachment; filename="{self.filename()}"'
        response["Cache-Control"] = "no-store"
        response["X-Content-Type-Options"] = "nosniff"
        return response

    def chunks(self) -> Iterator[bytes]:
        # A streaming response is iterated after the view returned: keep the request's language and zone.
        with translation.override(self.language), timezone.override(self.timezone):
            yield from self._chunks()

    def _labels(self):
        def labels(choices):
            return {value: str(label) for value, label in choices}

        return {
            "status": labels(Image.Status.choices),
            "os_type": labels(Image.OSType.choices),
            "boot_mode": labels(Image.BootMode.choices),
            "kind": labels(Image.Kind.choices),
            "sharing": labels(Image.Sharing.choices),
            "cancelled": str(CANCELLED_LABEL),
            "yes": pgettext("Excel export", "Yes"),
            "no": pgettext("Excel export", "No"),
            "none": pgettext("Excel export storage", "None"),
            # Feature support text for each (hot upgrade, cloud-init, qemu-ga) combination.
            "features": {
                flags: ", ".join(
                    label
                    for flag, label in zip(flags, (_("hot upgrade"), "cloud-init", "qemu-ga"), strict=True)
                    if flag
                )
                for flags in itertools.product((False, True), repeat=3)
            },
        }

    def _chunks(self) -> Iterator[bytes]:
        sink = _Sink()
        archive = ZipFile(sink, "w", ZIP_DEFLATED, allowZip64=True)
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet(_("Images"))
        headers = _headers()
        for index, (_title, width) in enumerate(headers, 1):
            sheet.column_dimensions[get_column_letter(index)].width = width
        sheet.freeze_panes = "A2"
        sheet._id = 1  # ExcelWriter numbers sheets from 1 in creation order; this one is created first.
        entry = archive.open(sheet.path[1:], "w")
        counted = _Counted(entry)
        sheet._writer = WorksheetWriter(sheet, out=counted)
        sheet._writer.write_top()

        bold = Font(bold=True)
        header_cells = []
        for title, _width in headers:
            cell = WriteOnlyCell(sheet, value=title)
            cell.font = bold
            header_cells.append(cell)
        sheet.append(header_cells)

        labels = self._labels()
        self._sheet = sheet
        counts = {"status": Counter(), "os_type": Counter(), "storage": Counter()}
        truncated = False
        rows = self.queryset.values_list(*FIELDS).iterator(chunk_size=2000)
        for values in rows:
            if self.rows_written >= MAX_ROWS or counted.count >= MAX_SHEET_BYTES:
                truncated = True
                break
            sheet.append(self._row(values, labels, counts))
            self.rows_written += 1
            if len(sink.buffer) >= FLUSH_BYTES:
                yield sink.take()

        last = get_column_letter(len(headers))
        sheet.auto_filter.ref = f"A1:{last}{self.rows_written + 1}"
        sheet.close()
        entry.close()
        yield sink.take()

        self._summary(workbook, counts, labels, truncated)
        workbook.properties.modified = datetime.datetime.now(tz=datetime.UTC).replace(tzinfo=None)
        _StreamedSheetWriter(workbook, archive, streamed={sheet}).save()
        yield sink.take()

    def _row(self, values, labels, counts) -> list:
        (
            name,
            pk,
            status,
            progress,
            encrypted,
            cloud_init,
            qemu_ga,
            hot_upgrade,
            os_type,
            platform,
            os_version,
            architecture,
            boot_mode,
            project_group,
            kind,
            disk_format,
            size,
            virtual_size,
            enabled,
            sharing,
            tenant_id,
            tenant_name,
            storage,
            image_labels,
            md5,
            sha256,
            description,
            created_at,
            failure_reason,
        ) = values
        yes, no = labels["yes"], labels["no"]
        counts["status"][status] += 1
        counts["os_type"][os_type] += 1
        counts["storage"][storage] += 1
        return [
            neutralise(name),
            str(pk),
            labels["cancelled"]
            if status == Image.Status.FAILED and failure_reason == Image.FailureReason.CANCELLED
            else labels["status"].get(status, status),
            progress,
            yes if encrypted else no,
            labels["features"][bool(hot_upgrade), bool(cloud_init), bool(qemu_ga)] or None,
            labels["os_type"].get(os_type, os_type),
            neutralise(" ".join(part for part in (platform, os_version, architecture) if part)) or None,
            neutralise(platform) or None,
            neutralise(os_version) or None,
            architecture,
            labels["boot_mode"].get(boot_mode, boot_mode),
            neutralise(project_group) if project_group else None,
            labels["kind"].get(kind, kind),
            disk_format,
            size,
            virtual_size,
            yes if enabled else no,
            labels["sharing"].get(sharing, sharing),
            neutralise(tenant_name),
            neutralise(storage) if storage else None,
            neutralise(", ".join(image_labels)) if image_labels else None,
            md5 or None,
            sha256 or None,
            neutralise(description) if description else None,
            self._date_cell(created_at),
        ]

    def _date_cell(self, value):
        """A date in the console's one format (settings.EXCEL_DATETIME_FORMAT), in the user's zone."""
        if value is None:
            return None
        cell = WriteOnlyCell(self._sheet, value=value.astimezone(self.timezone).replace(tzinfo=None))
        cell.number_format = settings.EXCEL_DATETIME_FORMAT
        return cell

    def _summary(self, workbook, counts, labels, truncated) -> None:
        sheet = workbook.create_sheet(_("Summary"))
        sheet.column_dimensions["A"].width = 30
        sheet.column_dimensions["B"].width = 12
        bold = Font(bold=True)

        def heading(*values):
            cells = []
            for value in values:
                cell = WriteOnlyCell(sheet, value=value)
                cell.font = bold
                cells.append(cell)
            sheet.append(cells)

        heading(_("Images exported"), self.rows_written)
        exported_at = WriteOnlyCell(sheet, value=timezone.localtime().replace(tzinfo=None))
        exported_at.number_format = settings.EXCEL_DATETIME_FORMAT
        sheet.append([_("Exported at"), exported_at])
        sheet.append([_("Tenant"), neutralise(self.tenant.name)])
        if truncated:
            sheet.append(
                [
                    _("Only the first %(rows)d images fit in one Excel sheet; narrow the filter.")
                    % {"rows": self.rows_written}
                ]
            )
        # The counts were kept by stored value; name them now.
        named = {
            "status": {labels["status"].get(value, value): n for value, n in counts["status"].items()},
            "os_type": {labels["os_type"].get(value, value): n for value, n in counts["os_type"].items()},
            "storage": {value or labels["none"]: n for value, n in counts["storage"].items()},
        }
        for title, key in (
            (_("Status"), "status"),
            (_("System type"), "os_type"),
            (_("Image storage"), "storage"),
        ):
            sheet.append([])
            heading(title, _("Images"))
            for value, count in sorted(named[key].items(), key=lambda item: (-item[1], item[0])):
                sheet.append([neutralise(value), count])


def export_response(*, queryset: QuerySet[Image], tenant: Tenant) -> StreamingHttpResponse:
    """The Excel file of `queryset` as a download; the console and the API both answer with this."""
    return ImageExport(queryset=queryset, tenant=tenant).response()
