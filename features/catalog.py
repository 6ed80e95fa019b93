"""What every feature means: its family, its plain-words description, and its value when a customer has no rows.

One declarative table (`PATTERNS`, first match wins) drives `family`, `concept`, `describe` and
`default_value`, so a new feature is documented by adding a line, not a function. Names not matched by any pattern are static
customer attributes (their names are the customer table's column names).

`describe` is written for retention agents reading an at-risk list ("3 complaints in the last 30 days",
"no activity for 21 days", "paid amount up 15% vs 90 days earlier").
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from churn_pipeline.features.payments import PRICE_LOOKBACK_DAYS

FAMILIES = (
    "recency",
    "frequency",
    "activity",
    "support",
    "complaints",
    "surveys",
    "payments",
    "price",
    "attributes",
)

# How a value is put into words:
#   count/days/minutes/score/money -> {v} formatted as a number ({s} = plural 's' when v != 1)
#   ratio  -> {change}: 'up 15%' / 'down 60%' / 'unchanged' for a ratio of rates (1.0 = same)
#   pct    -> {change}: same, from a percentage change
#   delta  -> {change}: 'up 3 points' / 'down 4 points' / 'unchanged'
#   flag   -> `text` when the value is 1, `off` when 0
#   prob   -> {v} with two decimals; `text` when the value is at least 0.5, `off` below
Kind = Literal["count", "days", "minutes", "score", "money", "ratio", "pct", "delta", "flag", "prob"]


@dataclass(frozen=True)
class FeaturePattern:
    regex: str
    family: str
    kind: Kind
    text: str
    missing: str | None = None  # text when the value is null (e.g. never happened)
    off: str | None = None  # flags: text when the value is 0
    default: float | None = None  # value for a customer with no rows in the source table
    concept: str | None = None  # the fact it measures, shared by its variants; default: name minus "_<w>d"

    def __post_init__(self) -> None:
        assert self.family in FAMILIES, self.family


_W = r"(?P<w>\d+)"
_P = FeaturePattern

PATTERNS: tuple[FeaturePattern, ...] = (
    # recency and tenure
    _P("tenure_days", "recency", "days", "customer for {v} day{s}"),
    _P("days_since_last_event", "recency", "days", "no activity for {v} day{s}", missing="no activity recorded"),
    _P("days_since_last_payment", "payments", "days", "last successful payment {v} day{s} ago", missing="no successful payment recorded"),
    _P("days_since_last_contact", "support", "days", "last support contact {v} day{s} ago", missing="never contacted support"),
    _P("days_since_last_complaint", "complaints", "days", "last complaint {v} day{s} ago", missing="never complained"),
    _P("days_since_last_survey", "surveys", "days", "last survey answer {v} day{s} ago", missing="never answered a survey"),
    _P(r"days_since_last_(?P<type>.+)", "recency", "days", "no {type} for {v} day{s}", missing="no {type} recorded"),
    # frequency and regularity (features.frequency), buy-till-you-die model (features.btyd)
    _P("lifetime_events", "frequency", "count", "{v} event{s} in total", default=0),
    _P("visit_days", "frequency", "count", "active on {v} day{s} in total", default=0),
    _P("events_per_week", "frequency", "score", "{v} events a week since the first one", missing="no activity recorded"),
    _P("events_per_active_day", "frequency", "score", "{v} events per active day", missing="no activity recorded"),
    _P("visit_gap_mean_days", "frequency", "days", "visits every {v} day{s} on average",
       missing="fewer than two active days so far", concept="visit_gap"),
    _P("visit_gap_median_days", "frequency", "days", "typically {v} day{s} between visits",
       missing="fewer than two active days so far", concept="visit_gap"),
    _P("visit_gap_std_days", "frequency", "days", "gaps between visits vary by {v} day{s}",
       missing="fewer than three active days so far", concept="visit_regularity"),
    _P("visit_gap_cv", "frequency", "score", "gaps between visits vary by {v}x their average",
       missing="fewer than three active days so far", concept="visit_regularity"),
    _P("visit_overdue_ratio", "frequency", "score", "no visit for {v}x their average gap between visits",
       missing="fewer than two active days so far"),
    _P("visit_gap_last_vs_mean", "frequency", "ratio", "last gap between visits {change} vs their average gap",
       missing="fewer than three active days so far"),
    _P("btyd_p_alive", "frequency", "prob", "likely still active (P(alive) {v})",
       off="likely no longer active (P(alive) {v})", missing="no activity recorded"),
    _P("btyd_expected_events", "frequency", "score", "{v} active days expected in the label horizon",
       missing="no activity recorded"),
    # activity
    _P(r"events_trend_(?P<recent>\d+)_vs_prev(?P<before>\d+)", "activity", "ratio",
       "activity in the last {recent} days {change} vs the {before} days before",
       missing="no activity in the {before} days before the last {recent}", concept="events_trend"),
    _P(r"events_trend_(?P<recent>\d+)_vs_(?P<before>\d+)", "activity", "ratio",
       "activity in the last {recent} days {change} vs the last {before} days",
       missing="no activity in the last {before} days", concept="events_trend"),
    _P(rf"events_{_W}d", "activity", "count", "{v} event{s} in the last {w} days", default=0),
    _P(rf"events_(?P<type>.+)_{_W}d", "activity", "count", "{v} {type} event{s} in the last {w} days", default=0),
    _P(rf"active_days_{_W}d", "activity", "count", "active on {v} of the last {w} days", default=0),
    _P(rf"spend_{_W}d", "activity", "money", "spent {v} in the last {w} days", default=0.0),
    # support
    _P(rf"contacts_{_W}d", "support", "count", "{v} support contact{s} in the last {w} days", default=0),
    _P(rf"contacts_(?P<channel>.+)_{_W}d", "support", "count", "{v} {channel} contact{s} in the last {w} days", default=0),
    _P(rf"response_minutes_mean_{_W}d", "support", "minutes", "support took {v} minutes to respond on average (last {w} days)",
       missing="no answered support contact in the last {w} days"),
    _P(rf"response_minutes_max_{_W}d", "support", "minutes", "slowest support response {v} minutes (last {w} days)",
       missing="no answered support contact in the last {w} days"),
    _P("open_contacts", "support", "count", "{v} support contact{s} still open", default=0),
    _P(rf"csat_mean_{_W}d", "support", "score", "average support satisfaction {v} of 5 (last {w} days)",
       missing="no satisfaction score in the last {w} days"),
    _P(rf"csat_min_{_W}d", "support", "score", "lowest support satisfaction {v} of 5 (last {w} days)",
       missing="no satisfaction score in the last {w} days"),
    # complaints
    _P(rf"complaints_{_W}d", "complaints", "count", "{v} complaint{s} in the last {w} days", default=0),
    _P("unresolved_complaints", "complaints", "count", "{v} unresolved complaint{s}", default=0),
    # surveys
    _P("nps_last", "surveys", "score", "last NPS answer {v} of 10", missing="never answered an NPS survey"),
    _P("nps_detractor", "surveys", "flag", "NPS detractor (last answer 0-6)", off="not an NPS detractor", default=0),
    _P("nps_change", "surveys", "delta", "NPS {change} since the previous answer", missing="only one NPS answer so far"),
    # payments and price
    _P(rf"failed_payments_{_W}d", "payments", "count", "{v} failed payment{s} in the last {w} days", default=0),
    _P(rf"paid_amount_{_W}d", "payments", "money", "paid {v} in the last {w} days", default=0.0),
    _P("last_paid_amount", "price", "money", "last payment {v}", missing="no successful payment recorded"),
    _P("price_change_pct", "price", "pct", f"paid amount {{change}} vs {PRICE_LOOKBACK_DAYS} days earlier",
       missing=f"no payment {PRICE_LOOKBACK_DAYS} days earlier to compare with"),
    _P("price_rise", "price", "flag", f"price rise (paid amount up vs {PRICE_LOOKBACK_DAYS} days earlier)",
       off=f"no price rise in the last {PRICE_LOOKBACK_DAYS} days", default=0),
)  # fmt: skip

_COMPILED = tuple((re.compile(p.regex), p) for p in PATTERNS)


@functools.lru_cache(maxsize=4096)  # reasons describe the same few dozen names for every listed customer
def _match_cached(name: str) -> tuple[FeaturePattern | None, tuple[tuple[str, str], ...]]:
    for rx, pattern in _COMPILED:
        m = rx.fullmatch(name)
        if m:
            return pattern, tuple((k, v.replace("_", " ")) for k, v in m.groupdict().items())
    return None, ()


def _match(name: str) -> tuple[FeaturePattern | None, dict[str, str]]:
    pattern, groups = _match_cached(name)
    return pattern, dict(groups)


def family(feature_name: str) -> str:
    """The reason family of a feature: one of FAMILIES (unknown names are customer attributes)."""
    pattern, _ = _match(feature_name)
    return pattern.family if pattern else "attributes"


def concept(feature_name: str) -> str:
    """The fact a feature measures, shared by its variants over different windows (`complaints_7d` and
    `complaints_90d` -> `complaints`; both engagement trends -> `events_trend`), so a list of reasons can
    name each fact once. Different event types or channels are different concepts."""
    pattern, _ = _match(feature_name)
    if pattern is not None and pattern.concept:
        return pattern.concept
    return _WINDOW_SUFFIX.sub("", feature_name) if pattern is not None else feature_name


_WINDOW_SUFFIX = re.compile(r"_\d+d$")


def default_value(feature_name: str) -> float | None:
    """The value of a customer with no rows in the feature's source table (0 for counts, sums and flags;
    None when 'nothing happened' has no number, e.g. days since the last event)."""
    pattern, _ = _match(feature_name)
    return pattern.default if pattern else None


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value) or (isinstance(value, float) and math.isinf(value))
    except (TypeError, ValueError):  # pandas.NA compares to NA, whose truth is ambiguous
        return True


def _number(value: float) -> str:
    """Whole numbers without decimals, others with up to two ('49.99', '2.5', '3')."""
    v = float(value)
    if v.is_integer():
        return str(int(v))
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _change(pct: float, unit: str = "%") -> str:
    rounded = round(pct)
    if rounded == 0:
        return "unchanged"
    return f"{'up' if rounded > 0 else 'down'} {abs(rounded)}{unit}"


def describe(feature_name: str, value: Any) -> str:
    """Plain words for a retention agent: what this feature's value says about the customer."""
    pattern, groups = _match(feature_name)
    if pattern is None:
        shown = (
            "unknown"
            if _is_missing(value)
            else (_number(value) if isinstance(value, int | float) else str(value))
        )
        return f"{feature_name.replace('_', ' ')}: {shown}"
    if _is_missing(value):
        return (pattern.missing or f"{feature_name.replace('_', ' ')} unknown").format(**groups)
    v = float(value)
    fields: dict[str, str] = dict(groups)
    if pattern.kind == "flag":
        return (pattern.text if v >= 0.5 else (pattern.off or f"not {pattern.text}")).format(**fields)
    if pattern.kind == "prob":
        fields["v"] = f"{v:.2f}"
        return (pattern.text if v >= 0.5 else (pattern.off or pattern.text)).format(**fields)
    if pattern.kind == "ratio":
        fields["change"] = _change((v - 1.0) * 100.0)
    elif pattern.kind == "pct":
        fields["change"] = _change(v)
    elif pattern.kind == "delta":
        fields["change"] = _change(v, " point" if abs(round(v)) == 1 else " points")
    else:
        shown = round(v) if pattern.kind in ("count", "days", "minutes") else v
        fields["v"] = f"{v:,.2f}" if pattern.kind == "money" else _number(shown)
        fields["s"] = "" if shown == 1 else "s"
    return pattern.text.format(**fields)


# How each placeholder of a description reads in the text `describe` made of it (to read a reason back).
_FIELD_REGEX = {
    "v": r"-?[\d,]+(?:\.\d+)?",
    "s": "s?",
    "w": r"\d+",
    "recent": r"\d+",
    "before": r"\d+",
    "change": r"(?:unchanged|(?:up|down) \d+(?:%| points?))",
}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _template_regex(template: str) -> re.Pattern[str]:
    parts, last = [], 0
    for m in _PLACEHOLDER.finditer(template):
        parts += [re.escape(template[last : m.start()]), _FIELD_REGEX.get(m.group(1), ".+?")]
        last = m.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts))


# Every text a pattern can produce (value, missing, off), in PATTERNS order: the first full match wins, as
# `describe` matched the feature name in the same order.
_REASON_TEXTS = tuple(
    (_template_regex(t), p.family) for p in PATTERNS for t in (p.text, p.missing, p.off) if t is not None
)


@functools.lru_cache(maxsize=4096)  # an at-risk list repeats the same few hundred reason texts
def family_of_reason(reason: str) -> str:
    """The family (one of FAMILIES) of the feature a reason (`describe`'s words) was written from: the at-risk
    list keeps the words, and the report groups them by family. Attributes ("plan: basic") and the generic
    "<feature> unknown" are read back from the feature name they quote. Words that several features write
    alike ("no activity recorded") belong to the first of them in PATTERNS."""
    for rx, fam in _REASON_TEXTS:
        if rx.fullmatch(reason):
            return fam
    name, sep, _ = reason.partition(": ")
    if not sep and reason.endswith(" unknown"):
        name = reason.removesuffix(" unknown")
    return family(name.replace(" ", "_"))
