"""HL7 v2 messages (ER7, the pipe-delimited encoding) read with python-hl7, and the ACKs that answer them.

A message is parsed once into `hl7.Message`; `Segment` wraps one of its segments with forgiving accessors
(an absent optional field or component is `""`, as HL7 means it). What a message is refused for travels
as an `Hl7Error` carrying the acknowledgment code (AR: the message cannot be processed at all, AE: it was
understood but its content is refused), an HL7 error code (table 0357) and a reason: the reason names the
rule and the segment/field, never a value from the message (which may be PHI). What a message is applied
despite (an unusable optional field dropped) travels as a warning on the parsed message (`Parsed.warn`),
answered as an ERR segment of severity W in the ACK.

A time without an offset is the sender's local time (HL7 v2 TS): read in the zone of the feed
(`domain.hl7.feed.Feed`), daylight saving time included.

Bounded before python-hl7 parses anything (the feed's `Limits`: segments, repetitions of a field,
delimiters, escape sequences; settings `PRM_HL7_MAX_*`), so a hostile message is refused in one linear
scan of its text rather than built into millions of objects (and locks).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import hl7
import hl7.util

from domain.hl7.feed import Feed, Limits
from domain.hl7.models import MAX_CONTROL_ID_LENGTH

MLLP_FRAME = "\x0b\x1c"
MLLP_FRAME_BYTES = MLLP_FRAME.encode()
MAX_REASON = 200
RECEIVER = "PRM"  # MSH-3/MSH-4 of our ACKs when the message did not name us
ACK_VERSION = "2.5.1"
# The default limits (`domain.hl7.feed.Limits`, the settings' defaults too).
MAX_SEGMENTS = Limits.segments
MAX_REPETITIONS = Limits.repetitions
MAX_DELIMITERS = Limits.delimiters
MAX_ESCAPES = Limits.escapes
MAX_WARNINGS = 20  # ERR segments of severity W in one ACK
# C0 control characters (and DEL) a value may not hold, escaped (`\X01\`) or not: no name, code or phone has
# one. Tab, CR and LF stay (`\.br\` in a text).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _withhold_values(record: logging.LogRecord) -> bool:
    """python-hl7 logs the text of a value it cannot unescape or decode (a name, a phone number) at ERROR,
    with a traceback quoting it: keep the fact, drop the value. A filter, not `disabled`: a later
    `logging.config.dictConfig` re-enables existing loggers, and keeps their filters."""
    record.msg, record.args, record.exc_info, record.exc_text = (
        "undecodable escape in an HL7 value",
        (),
        None,
        None,
    )
    return True


hl7.util.logger.addFilter(_withhold_values)
_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?$")


class AckCode:
    """HL7 table 0008, original mode."""

    ACCEPT = "AA"
    ERROR = "AE"
    REJECT = "AR"


class ErrorCode:
    """HL7 table 0357 (message error condition codes) that this receiver answers with."""

    SEGMENT_SEQUENCE = "100"
    REQUIRED_FIELD_MISSING = "101"
    DATA_TYPE = "102"
    TABLE_VALUE = "103"
    UNSUPPORTED_MESSAGE_TYPE = "200"
    UNSUPPORTED_EVENT = "201"
    UNSUPPORTED_PROCESSING_ID = "202"
    UNKNOWN_KEY = "204"
    DUPLICATE_KEY = "205"
    RECORD_LOCKED = "206"
    APPLICATION_ERROR = "207"


class Severity:
    """HL7 table 0516 (error severity) that this receiver answers with."""

    ERROR = "E"
    WARNING = "W"


class Hl7Error(Exception):
    """Why a message is refused (or, as a warning, what was dropped from it): the ACK code, an HL7 error code,
    a reason without PHI, and where."""

    def __init__(
        self,
        reason: str,
        *,
        code: str = ErrorCode.APPLICATION_ERROR,
        ack: str = AckCode.ERROR,
        location: str = "",
    ) -> None:
        super().__init__(reason)
        self.reason = reason[:MAX_REASON]
        self.code = code
        self.ack = ack
        self.location = location


def missing(location: str, what: str) -> Hl7Error:
    """A required field is empty."""
    return Hl7Error(
        f"{location} ({what}) is required.", code=ErrorCode.REQUIRED_FIELD_MISSING, location=location
    )


class Segment:
    """One segment with 1-based, forgiving accessors: `value(3, 1)` is the first component of field 3."""

    def __init__(self, message: hl7.Message, segment: hl7.Segment) -> None:
        self._message = message
        self._segment = segment
        self.id = str(segment[0][0])

    def repetitions(self, field: int) -> int:
        """How many repetitions field `field` holds (0 when it is empty or absent)."""
        if field >= len(self._segment) or not str(self._segment(field)):
            return 0
        return len(self._segment(field))

    def raw(self, field: int) -> str:
        """The whole field as sent (components and all)."""
        return str(self._segment(field)) if field < len(self._segment) else ""

    def value(self, field: int, component: int = 1, repetition: int = 1, subcomponent: int = 1) -> str:
        """The text at field.component.subcomponent of a repetition, unescaped and stripped; `""` if none.
        An AE (102) when it unescapes to a NUL character."""
        try:
            found = self._segment.extract_field(1, field, repetition, component, subcomponent)
        except Exception:  # a path the segment does not reach, or odd delimiters: absent, as HL7 means it
            return ""
        text = str(found).strip()
        if _CONTROL.search(text):
            location = f"{self.id}-{field}"
            if "\x00" in text:  # `\X00\` unescapes to a NUL, which PostgreSQL's text cannot hold
                reason = f"{location} holds a NUL character (\\X00\\), which is not text."
            else:
                reason = (
                    f"{location} holds a control character (an escape such as \\X01\\), which is not text."
                )
            raise Hl7Error(reason, code=ErrorCode.DATA_TYPE, location=location)
        return text


@dataclass(frozen=True)
class Header:
    """What MSH says about a message."""

    control_id: str
    message_code: str  # ADT, SIU
    trigger: str  # A01, S12
    sending_application: str
    sending_facility: str
    processing_id: str
    version: str
    sent_at: datetime | None

    @property
    def type(self) -> str:
        """`ADT^A03`."""
        return f"{self.message_code}^{self.trigger}"


@dataclass
class Parsed:
    """A parsed message: its header, its segments in order, and a digest of its text; the feed it came by
    and what was dropped from it (warnings, answered with ERR segments of severity W)."""

    message: hl7.Message
    header: Header
    digest: str
    # The digest of the whole text, MSH-7 included, as records made before `digest_of` left MSH-7 out hold
    # it: a resend of such a message is still a repeat. Needless once those are past PRM_HL7_RETENTION_DAYS.
    whole_text_digest: str = ""
    feed: Feed = field(default_factory=Feed)
    warnings: list[Hl7Error] = field(default_factory=list)

    def timestamp(self, value: str, location: str) -> datetime | None:
        """An HL7 TS of this message: a time without an offset is the feed's local time."""
        return parse_timestamp(value, location, self.feed.zone)

    def warn(self, location: str, reason: str, code: str = ErrorCode.TABLE_VALUE) -> None:
        """Record that an optional field was dropped (or not used): an ERR of severity W in the ACK."""
        if len(self.warnings) < MAX_WARNINGS and all(w.location != location for w in self.warnings):
            self.warnings.append(Hl7Error(reason, code=code, ack=AckCode.ACCEPT, location=location))

    def segments(self, segment_id: str) -> list[Segment]:
        """Every `segment_id` segment, in order (none: an empty list)."""
        return [Segment(self.message, s) for s in self.message if str(s[0][0]) == segment_id]

    def first(self, segment_id: str) -> Segment | None:
        """The first `segment_id` segment, if any."""
        found = self.segments(segment_id)
        return found[0] if found else None

    def required(self, segment_id: str) -> Segment:
        """The first `segment_id` segment; an AE naming it when there is none."""
        found = self.first(segment_id)
        if found is None:
            raise Hl7Error(
                f"A {self.header.type} message needs a {segment_id} segment.",
                code=ErrorCode.SEGMENT_SEQUENCE,
                location=segment_id,
            )
        return found


def normalise(text: str) -> str:
    """The message with MLLP framing removed and segments separated by CR, as ER7 wants (HTTP clients often
    send LF or CRLF)."""
    text = text.strip(MLLP_FRAME + "\r\n\t ")
    return "\r".join(line for line in re.split(r"\r\n|\r|\n", text) if line.strip())


# HL7 table 0211 (alternate character sets) that this receiver reads: those whose MSH segment is ASCII, so
# MSH-18 itself can be read before the message is decoded. UTF-16/32 and the ISO 2022 sets are refused.
CHARSETS = {
    "ASCII": "ascii",
    **{f"8859/{n}": f"iso8859-{n}" for n in range(1, 10)},
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
}
DEFAULT_CHARSET = "utf-8"  # a message declaring none, sent without a charset: UTF-8 (ASCII's superset)
MSH_CHARSET_FIELD = 18


def _msh_fields(msh: str) -> list[str]:
    """The fields of an MSH line: index n-1 holds MSH-n (MSH-1, the separator, is what splits them)."""
    return msh.split(msh[3]) if len(msh) > 3 else [msh]


def declared_charset(body: bytes) -> str:
    """MSH-18 (its first repetition's first component), upper-cased; `""` when the message declares none."""
    first = body.strip(MLLP_FRAME_BYTES + b"\r\n\t ").split(b"\r", 1)[0].split(b"\n", 1)[0]
    header = first.decode("latin-1")  # every byte maps to one character: enough to read an ASCII header
    if not header.startswith("MSH") or len(header) < 8:
        return ""
    fields = _msh_fields(header)
    if len(fields) < MSH_CHARSET_FIELD:
        return ""
    repetition, component = header[5:6] or "~", header[4:5] or "^"
    return fields[MSH_CHARSET_FIELD - 1].split(repetition)[0].split(component)[0].strip().upper()


def decode(body: bytes, transport_charset: str | None = None) -> tuple[str, Hl7Error | None]:
    """The message's text, decoded by the character set MSH-18 declares (when it declares none: the one the
    transport named, else UTF-8), and why it cannot be read that way (an AR), if so. A message that cannot
    be decoded still comes back as text (undecodable bytes replaced), so its header can be answered."""
    declared = declared_charset(body)
    error: Hl7Error | None = None
    if declared:
        codec = CHARSETS.get(declared)
        if codec is None:
            codec, error = (
                DEFAULT_CHARSET,
                Hl7Error(
                    f"MSH-18 names a character set this receiver does not read; send {', '.join(CHARSETS)}.",
                    code=ErrorCode.TABLE_VALUE,
                    ack=AckCode.REJECT,
                    location="MSH-18",
                ),
            )
        where = "the character set MSH-18 names"
    else:
        codec, where = transport_charset or DEFAULT_CHARSET, "UTF-8 (MSH-18 names no character set)"
        if transport_charset:
            where = "the charset of its Content-Type (MSH-18 names none)"
        try:
            "".encode(codec)
        except LookupError:
            codec, error = (
                DEFAULT_CHARSET,
                Hl7Error(
                    "The Content-Type names an unknown charset, and MSH-18 names none.",
                    code=ErrorCode.TABLE_VALUE,
                    ack=AckCode.REJECT,
                    location="MSH-18",
                ),
            )
    try:
        return body.decode(codec), error
    except UnicodeDecodeError:
        return body.decode(codec, "replace"), error or Hl7Error(
            f"The message is not valid text in {where}.",
            code=ErrorCode.DATA_TYPE,
            ack=AckCode.REJECT,
            location="MSH-18",
        )


def digest_of(body: str) -> str:
    """SHA-256 of a normalised message without MSH-7 (the time it was sent), which interface engines stamp
    afresh when they resend: equal digests under one control id are the same message."""
    msh, sep, rest = body.partition("\r")
    fields = _msh_fields(msh)
    if len(fields) > 6:
        fields[6] = ""
        msh = msh[3].join(fields)
    return hashlib.sha256((msh + sep + rest).encode()).hexdigest()


def parse_timestamp(value: str, location: str, zone: tzinfo = UTC) -> datetime | None:
    """An HL7 TS/DTM (`YYYYMMDDHHMM[SS[.S]][+ZZZZ]`) as an aware datetime; in `zone` (the sender's local
    time, daylight saving time included) when it names no offset."""
    if not value:
        return None
    match = _TS.match(value)
    if match is None:
        raise Hl7Error(f"{location} is not an HL7 timestamp.", code=ErrorCode.DATA_TYPE, location=location)
    year, month, day, hour, minute, second, offset = match.groups()
    tz: tzinfo = zone
    if offset:
        sign = 1 if offset[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=tz,
        )
    except ValueError as exc:
        raise Hl7Error(
            f"{location} is not a valid date.", code=ErrorCode.DATA_TYPE, location=location
        ) from exc


def check_limits(body: str, limits: Limits = Limits()) -> None:
    """Refuse a message past `limits.segments` (AR) or with a field past `limits.repetitions` (AE naming
    it), or with too many delimiters or escapes (AR), in one linear scan of its (normalised) text, before it
    is parsed."""
    lines = body.split("\r")
    if len(lines) > limits.segments:
        raise Hl7Error(
            f"The message has more than {limits.segments} segments.",
            code=ErrorCode.SEGMENT_SEQUENCE,
            ack=AckCode.REJECT,
            location="MSH",
        )
    field_sep, component, repetition, escape, subcomponent = tuple((body[3:8] + "^~\\&")[:5])
    encoding = body[4:8]
    for line in lines:
        if line.count(repetition) < limits.repetitions:  # n separators: n + 1 repetitions
            continue
        fields = line.split(field_sep)
        first = 2 if line.startswith("MSH") else 1  # MSH-2 holds the repetition separator itself
        for index, value in enumerate(fields[first:], start=first):
            if value.count(repetition) >= limits.repetitions:
                segment_id = fields[0][:3]
                number = index + 1 if segment_id == "MSH" else index
                location = f"{segment_id}-{number}"
                raise Hl7Error(
                    f"{location} repeats more than {limits.repetitions} times.",
                    code=ErrorCode.DATA_TYPE,
                    location=location,
                )
    rest = body.replace(encoding, "", 1)  # MSH-2 holds one of each
    delimiters = sum(rest.count(char) for char in {field_sep, component, repetition, subcomponent})
    if delimiters > limits.delimiters:
        raise Hl7Error(
            f"The message holds more than {limits.delimiters} fields, components and repetitions.",
            code=ErrorCode.SEGMENT_SEQUENCE,
            ack=AckCode.REJECT,
            location="MSH",
        )
    if escape and rest.count(escape) > 2 * limits.escapes:
        raise Hl7Error(
            f"The message holds more than {limits.escapes} escape sequences.",
            code=ErrorCode.DATA_TYPE,
            ack=AckCode.REJECT,
            location="MSH",
        )


def parse_header(text: str, feed: Feed | None = None) -> Parsed:
    """Read a message's MSH alone (what an ACK needs: the rest is `parse_body`'s); an AR `Hl7Error` when it is
    not an HL7 v2 message or its header lacks what an ACK needs."""
    feed = feed or Feed()
    body = normalise(text)
    if not body.startswith("MSH") or len(body) < 8:
        raise Hl7Error(
            "The body is not an HL7 v2 message: it must start with an MSH segment.",
            code=ErrorCode.SEGMENT_SEQUENCE,
            ack=AckCode.REJECT,
            location="MSH",
        )
    header_line = body.split("\r", 1)[0]
    if sum(header_line.count(char) for char in set(header_line[3:8])) > feed.limits.header_delimiters:
        raise Hl7Error(
            "The MSH segment is too large to be a message header.",
            code=ErrorCode.SEGMENT_SEQUENCE,
            ack=AckCode.REJECT,
            location="MSH",
        )
    try:
        message = hl7.parse(header_line)
        msh = Segment(message, message.segment("MSH"))
        header = Header(
            control_id=msh.value(10),
            message_code=msh.value(9, 1).upper(),
            trigger=msh.value(9, 2).upper(),
            sending_application=msh.value(3),
            sending_facility=msh.value(4),
            processing_id=msh.value(11),
            version=msh.value(12),
            sent_at=parse_timestamp(msh.value(7), "MSH-7", feed.zone),
        )
    except Hl7Error as exc:
        exc.ack = AckCode.REJECT
        raise
    except Exception as exc:  # python-hl7 fails in many ways on a header with odd delimiters
        raise Hl7Error(
            "The message could not be parsed as HL7 v2 (ER7).",
            code=ErrorCode.SEGMENT_SEQUENCE,
            ack=AckCode.REJECT,
            location="MSH",
        ) from exc
    if not header.control_id:
        raise Hl7Error(
            "MSH-10 (message control id) is required.",
            code=ErrorCode.REQUIRED_FIELD_MISSING,
            ack=AckCode.REJECT,
            location="MSH-10",
        )
    if len(header.control_id) > MAX_CONTROL_ID_LENGTH:
        raise Hl7Error(
            "MSH-10 (message control id) is longer than 199 characters.",
            code=ErrorCode.DATA_TYPE,
            ack=AckCode.REJECT,
            location="MSH-10",
        )
    if not header.message_code or not header.trigger:
        raise Hl7Error(
            "MSH-9 (message type and trigger event) is required.",
            code=ErrorCode.REQUIRED_FIELD_MISSING,
            ack=AckCode.REJECT,
            location="MSH-9",
        )
    return Parsed(
        message=message,
        header=header,
        digest=digest_of(body),
        whole_text_digest=hashlib.sha256(body.encode()).hexdigest(),
        feed=feed,
    )


def parse_body(parsed: Parsed, text: str) -> None:
    """Parse the whole message whose header `parsed` holds, within the limits (`check_limits`); an
    `Hl7Error` (AE/AR) when it is past them or python-hl7 cannot read it."""
    body = normalise(text)
    check_limits(body, parsed.feed.limits)
    try:
        parsed.message = hl7.parse(body)
    except Exception as exc:  # python-hl7 fails in many ways on odd delimiters
        raise Hl7Error(
            "The message could not be parsed as HL7 v2 (ER7).",
            code=ErrorCode.SEGMENT_SEQUENCE,
            ack=AckCode.REJECT,
            location="MSH",
        ) from exc


def parse(text: str, feed: Feed | None = None) -> Parsed:
    """Parse an ER7 message (header, limits, body); an `Hl7Error` when it cannot be."""
    parsed = parse_header(text, feed)
    parse_body(parsed, text)
    return parsed


def _escape(text: str) -> str:
    """Our own text (a reason) escaped for ER7, with the default delimiters."""
    for char, escape in (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\")):
        text = text.replace(char, escape)
    return text.replace("\r", " ").replace("\n", " ")


def ack_control_id(control_id: str) -> str:
    """The ACK's own control id, derived from the message's (so a repeat is answered identically)."""
    return "ACK" + hashlib.sha256(control_id.encode()).hexdigest()[:17]


def _echoing_header(parsed: Parsed, code: str, now: str) -> list[str]:
    """MSH and MSA of an ACK to `parsed`: the sender's routing fields turned around, its control id echoed."""
    msh = Segment(parsed.message, parsed.message.segment("MSH"))
    ack = parsed.message.create_ack(
        ack_code=code,
        message_id=ack_control_id(parsed.header.control_id),
        application=msh.raw(5) or RECEIVER,
        facility=msh.raw(6) or RECEIVER,
    )
    ack.segment("MSH").assign_field(now, 7)
    if not str(ack.segment("MSH")(12)):
        ack.segment("MSH").assign_field(ACK_VERSION, 12)
    return str(ack).rstrip("\r").split("\r")


def _err(error: Hl7Error, severity: str) -> str:
    segment, _, field_number = error.location.partition("-")
    location = f"{segment}^1^{field_number}" if field_number else segment  # ERR-2: segment^sequence^field
    return (
        f"ERR||{location}|{error.code}^{_escape(_ERROR_NAMES.get(error.code, ''))}^HL70357"
        f"|{severity}||||{_escape(error.reason)}"
    )


def build_ack(
    parsed: Parsed | None, code: str, error: Hl7Error | None = None, warnings: list[Hl7Error] | None = None
) -> str:
    """An original-mode ACK (MSH, MSA, then an ERR of severity E for AE/AR and one of severity W per field
    dropped) for `parsed`, or for a message whose header could not be read (`parsed` None). MSA-3 and ERR-8
    carry the reasons; nothing from the message's body is echoed, only its header's routing fields and
    control id."""
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    segments = [
        f"MSH|^~\\&|{RECEIVER}|{RECEIVER}|||{now}||ACK|{ack_control_id(now)}|P|{ACK_VERSION}",
        f"MSA|{code}|",
    ]
    if parsed is not None:
        try:
            segments = _echoing_header(parsed, code, now)
        except Exception:  # a header python-hl7 cannot turn around: our own, echoing the control id
            segments[1] = f"MSA|{code}|{_escape(parsed.header.control_id)}"
    if error is not None:
        segments[1] = f"{segments[1]}|{_escape(error.reason)}"
        segments.append(_err(error, Severity.ERROR))
    segments.extend(_err(warning, Severity.WARNING) for warning in warnings or ())
    return "\r".join(segments) + "\r"


_ERROR_NAMES = {
    ErrorCode.SEGMENT_SEQUENCE: "Segment sequence error",
    ErrorCode.REQUIRED_FIELD_MISSING: "Required field missing",
    ErrorCode.DATA_TYPE: "Data type error",
    ErrorCode.TABLE_VALUE: "Table value not found",
    ErrorCode.UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    ErrorCode.UNSUPPORTED_EVENT: "Unsupported event code",
    ErrorCode.UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    ErrorCode.UNKNOWN_KEY: "Unknown key identifier",
    ErrorCode.DUPLICATE_KEY: "Duplicate key identifier",
    ErrorCode.RECORD_LOCKED: "Application record locked",
    ErrorCode.APPLICATION_ERROR: "Application internal error",
}


def ack_code_of(ack: str) -> str:
    """MSA-1 of an ACK we built."""
    for segment in ack.split("\r"):
        if segment.startswith("MSA|"):
            return segment.split("|")[1]
    return ""
