from core.throttling import SettingRateThrottle


class FeedbackRateThrottle(SettingRateThrottle):
    """Ratings given, replaced or withdrawn per user (`FEEDBACK_RATE_LIMIT`)."""

    rate_setting = "FEEDBACK_RATE_LIMIT"
    group = "feedback"
