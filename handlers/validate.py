"""`validate`: the upload checks without storing anything."""
from __future__ import annotations

from handlers.commands import Command, Reply
from handlers.services import Services
from platform_core.errors import MissingAttachment
from platform_core.validation import ValidationReport, validate_dataset
from platform_core.validation.report import plural


def handle_validate(cmd: Command, services: Services) -> Reply:
    """Report every problem and warning of the attached file; ok when it would be accepted."""
    if cmd.attachment is None:
        raise MissingAttachment("validate")
    report = validate_dataset(cmd.attachment.data, cmd.attachment.filename, services.limits)
    return Reply(render_report(cmd.attachment.filename, report), ok=report.valid, data=report.as_dict())


def render_report(filename: str, report: ValidationReport) -> str:
    """The human form of a report: verdict, classes, then each problem and warning."""
    if report.valid:
        classes = ", ".join(f"{c} ({n})" for c, n in report.classes.items())
        lines = [f"{filename}: valid {report.kind.value} dataset with {len(report.classes)} classes: {classes}."]
    else:
        lines = [f"{filename}: rejected, {plural(len(report.errors), 'problem')} to fix:"]
        lines += [f"  - {p.message}" for p in report.errors]
    lines += [f"  Note: {p.message}" for p in report.warnings]
    return "\n".join(lines)
