from core.throttling import SettingRateThrottle


class AttachmentRateThrottle(SettingRateThrottle):
    """Uploads per user (`ATTACHMENT_RATE_LIMIT`): each may hold ATTACHMENT_MAX_BYTES of storage."""

    rate_setting = "ATTACHMENT_RATE_LIMIT"
    group = "attachments"
