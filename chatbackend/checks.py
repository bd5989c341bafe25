"""Django's deploy checks for our middleware.

Django's security checks look for its middleware by dotted path; ours (`chatbackend.middleware`)
are those classes with their hooks on the event loop. The checks that depend on them are run here
as if Django's own paths were listed, and their findings reported as `chatbackend.<id>`, so that
`check --deploy` still reports a missing HSTS setting, SSL redirect, nosniff or CSRF cookie flag
(Django's own "middleware missing" warnings are silenced in settings; these replace them)."""

from django.conf import settings
from django.core import checks
from django.core.checks.security import base, csrf
from django.test.utils import override_settings

OURS = {
    "chatbackend.middleware.Security": "django.middleware.security.SecurityMiddleware",
    "chatbackend.middleware.Csrf": "django.middleware.csrf.CsrfViewMiddleware",
    "chatbackend.middleware.XFrameOptions": (
        "django.middleware.clickjacking.XFrameOptionsMiddleware"
    ),
}

#: Django's deploy checks that pass silently when they do not find its middleware.
DEPENDENT_CHECKS = (
    base.check_security_middleware,
    base.check_xframe_options_middleware,
    base.check_sts,
    base.check_sts_include_subdomains,
    base.check_sts_preload,
    base.check_content_type_nosniff,
    base.check_ssl_redirect,
    base.check_xframe_deny,
    base.check_referrer_policy,
    base.check_cross_origin_opener_policy,
    csrf.check_csrf_middleware,
    csrf.check_csrf_cookie_secure,
)


@checks.register(checks.Tags.security, deploy=True)
def security_checks_for_our_middleware(app_configs, **kwargs):
    as_django = [OURS.get(name, name) for name in settings.MIDDLEWARE]
    with override_settings(MIDDLEWARE=as_django):
        found = [message for check in DEPENDENT_CHECKS for message in check(app_configs)]
    return [
        type(message)(message.msg, hint=message.hint, obj=message.obj, id=f"chatbackend.{m_id}")
        for message in found
        for m_id in [message.id]
    ]
