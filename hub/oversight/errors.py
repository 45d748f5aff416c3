"""Errors of oversight, rooted at :class:`OversightError` (a :class:`HubError`).

They are shown to administrators: each message says, in Chinese, what happened and what to do,
and each error carries its data as attributes."""

from __future__ import annotations

from ..errors import HubError


class OversightError(HubError):
    """Root of every error raised by ``lerec.hub.oversight``."""


class NotFound(OversightError, LookupError):
    def __init__(self, what: str, ident: object) -> None:
        self.what = what
        self.ident = ident
        super().__init__(f"未找到{what}（{ident}），请刷新后重试")


class NoteRequired(OversightError, ValueError):
    """An action that must be explained was given no explanation."""

    def __init__(self, action: str) -> None:
        self.action = action
        super().__init__(f"{action}必须填写说明")


class AlreadyResolved(OversightError, ValueError):
    def __init__(self, alert_id: int) -> None:
        self.alert_id = alert_id
        super().__init__(f"告警 {alert_id} 已处理，无需再次处理")


class AlreadyLinked(OversightError, ValueError):
    def __init__(self, segment_id: str, case_id: str, step_id: str) -> None:
        self.segment_id, self.case_id, self.step_id = segment_id, case_id, step_id
        super().__init__(f"记录 {segment_id} 已关联案件 {case_id} 的环节 {step_id}，无需重复关联")


class AlreadyRemoved(OversightError, ValueError):
    def __init__(self, link_id: int) -> None:
        self.link_id = link_id
        super().__init__(f"关联 {link_id} 已解除，无需再次解除")


class DeletionRefused(OversightError, PermissionError):
    """A deletion request, approval or execution is not allowed; ``reason`` says why."""

    def __init__(self, segment_id: str, reason: str) -> None:
        self.segment_id = segment_id
        self.reason = reason
        super().__init__(f"不能删除记录 {segment_id}：{reason}")


class DuplicateApproval(DeletionRefused):
    def __init__(self, segment_id: str, approver: str) -> None:
        self.approver = approver
        super().__init__(segment_id, f"{approver} 已审批过该删除申请，删除须由两名不同人员审批")


class HoldRefused(OversightError, PermissionError):
    """A hold (保全) cannot be placed or released; ``reason`` says why."""

    def __init__(self, segment_id: str, reason: str) -> None:
        self.segment_id = segment_id
        self.reason = reason
        super().__init__(f"记录 {segment_id} 的保全操作未执行：{reason}")
