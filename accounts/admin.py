from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from .throttling import login_retry_after, too_many_attempts_message


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form, counting each attempt per username and client address
    (accounts.throttling) before the password is checked. `accounts.views.admin_login` turns a
    refusal into a 429."""

    def clean(self):
        wait = login_retry_after(self.request, username=self.cleaned_data.get("username"))
        if wait:
            self.request.login_retry_after = wait
            raise ValidationError(too_many_attempts_message(wait), code="rate_limited")
        return super().clean()


admin.site.login_form = ThrottledAdminAuthenticationForm
