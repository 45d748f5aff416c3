"""THE permission matrix of the admin service: data, enforced in one place
(:func:`lerec.hub.admin.security.need`). Every route names exactly one permission.

Roles are the rulebook's role ids. ``PUBLIC`` needs no login; ``SESSION`` any logged-in user.
Officers and handlers see only the cases they are assigned to (``SCOPED_ROLES``); the other
staff roles see every case, the auditor read-only. A party (当事人, ``PARTY``) sees nothing of
any case: only what an approved access request covers (第二十九条), through the ``access.*``
routes, each view decided and logged by :func:`lerec.hub.access.service.check_access`.
"""

from __future__ import annotations

from types import MappingProxyType

ROLES = ("officer", "handler", "unit_head", "legal_reviewer", "agency_head", "archivist",
         "auditor", "party")

PUBLIC = "public"
SESSION = "session"
PARTY = "party"

_ALL = frozenset(ROLES)
_STAFF = _ALL - {PARTY}
#: who may ask for access (第二十九条 R1): parties and officials, not the auditor
_REQUESTERS = _ALL - {"auditor"}

#: permission -> (roles allowed, what it means in Chinese)
MATRIX: MappingProxyType[str, tuple[frozenset[str], str]] = MappingProxyType({
    PUBLIC: (_ALL, "无需登录（登录页、健康检查）"),
    SESSION: (_ALL, "任何已登录用户（首页、退出、个人信息）"),
    "case.read": (_STAFF, "查看案件、记录、附件、合规问题和归档进度"),
    "case.create": (frozenset({"handler", "unit_head"}), "新建案件（立案）"),
    "case.manage": (frozenset({"handler", "unit_head"}),
                    "推进环节、决定不启动、设置案件情形和执法人员"),
    "record.write": (frozenset({"officer", "handler"}), "制作、修改记录，上传附件"),
    "record.approve": (frozenset({"unit_head", "legal_reviewer", "agency_head"}),
                       "审核、审批（承办机构负责人、法制审核人员、行政机关负责人）"),
    "case.archive": (frozenset({"archivist"}), "归档、重新生成归档包（第二十八条，党政办）"),
    "clip.read": (_STAFF, "播放、下载执法记录仪音像记录（每次均记入审计日志）"),
    "clip.link": (frozenset({"officer", "handler"}), "关联、取消关联音像记录"),
    "findings.read": (_STAFF, "查看全部案件的合规问题"),
    "fleet.read": (frozenset({"unit_head", "agency_head", "archivist", "auditor"}),
                   "查看执法记录仪设备状态"),
    "alerts.read": (frozenset({"handler", "unit_head", "agency_head", "archivist", "auditor"}),
                    "查看预警"),
    "alerts.manage": (frozenset({"unit_head", "agency_head", "archivist"}),
                      "处理预警：填写说明后关闭缺号、哈希链断裂、未上传等告警（记入审计日志）"),
    "calendar.read": (frozenset({"handler", "unit_head", "agency_head", "archivist", "auditor"}),
                      "查看工作日历（上传期限按工作日计算）及未录入年度的提示"),
    "calendar.manage": (frozenset({"agency_head", "archivist"}),
                        "录入法定节假日、调休上班日等工作日历调整，声明年度工作日历已录入"),
    "retention.read": (frozenset({"agency_head", "archivist", "auditor"}),
                       "查看保存期满的音像记录、删除申请及删除记录"),
    "retention.manage": (frozenset({"agency_head", "archivist"}),
                         ("申请、同意、撤回、执行删除保存期满且未关联案件的音像记录"
                          "（须两名不同人员同意，党政办负责保存和管理）")),
    "users.read": (frozenset({"agency_head", "archivist", "auditor"}), "查看用户"),
    "users.manage": (frozenset({"agency_head", "archivist"}),
                     "新建、停用用户，设置角色、密码、涉密资格和当事人关联的案件"),
    "access.read": (_ALL, "查看查阅申请：本人的申请及其状态（行政机关负责人、审计可查看全部）"),
    "access.request": (_REQUESTERS, "申请查阅执法记录（第二十九条）"),
    "access.view": (_REQUESTERS, ("查阅经行政机关负责人同意的执法记录，下载带水印和内容凭证的"
                                  "音像记录（每次查阅、导出、下载均记入审计日志）")),
    "access.decide": (frozenset({"agency_head"}),
                      "同意、不同意或撤销查阅申请（第二十九条，行政机关负责人）"),
    "access.mark": (frozenset({"handler", "unit_head", "legal_reviewer", "agency_head",
                               "archivist"}),
                    "设定密级（国家秘密、商业秘密、个人隐私）"),
})

#: roles that see only the cases they are members of
SCOPED_ROLES = frozenset({"officer", "handler"})


def allowed(permission: str, role: str | None) -> bool:
    roles, _ = MATRIX[permission]
    if permission == PUBLIC:
        return True
    return role is not None and role in roles


def roles_for(permission: str) -> frozenset[str]:
    return MATRIX[permission][0]


#: roles that see every request in the 查阅申请 list (the others see their own)
SEES_ALL_REQUESTS = frozenset({"agency_head", "auditor"})


def sees_all(role: str) -> bool:
    return role not in SCOPED_ROLES and role != PARTY
