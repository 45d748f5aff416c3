"""Chinese article labels: 11 -> 第十一条."""

from __future__ import annotations

_DIGITS = "零一二三四五六七八九"


def chinese_number(n: int) -> str:
    """Write 0 <= n < 1000 in Chinese numerals as used in legal texts (十一, 二十, 一百零五)."""
    if n < 0 or n >= 1000:
        return str(n)
    if n < 10:
        return _DIGITS[n]
    if n < 20:
        return "十" + (_DIGITS[n - 10] if n > 10 else "")
    if n < 100:
        tens, ones = divmod(n, 10)
        return _DIGITS[tens] + "十" + (_DIGITS[ones] if ones else "")
    hundreds, rest = divmod(n, 100)
    if rest == 0:
        return _DIGITS[hundreds] + "百"
    if rest < 10:
        return _DIGITS[hundreds] + "百零" + _DIGITS[rest]
    tail = chinese_number(rest)
    return _DIGITS[hundreds] + "百" + ("一" + tail if rest < 20 else tail)


def article_label(n: int) -> str:
    """11 -> '第十一条'."""
    return f"第{chinese_number(n)}条"
