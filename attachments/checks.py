from django.conf import settings
from django.core.checks import Warning, register

from . import media_types


@register()
def media_types_can_be_checked(app_configs, **kwargs):
    """A configured type whose bytes cannot be recognised would refuse every upload of it."""
    unknown = [
        media_type
        for media_type in map(media_types.normalize, settings.ATTACHMENT_MEDIA_TYPES)
        if not media_types.checkable(media_type)
    ]
    if not unknown:
        return []
    return [
        Warning(
            f"ATTACHMENT_MEDIA_TYPES has {', '.join(unknown)}, whose content cannot be checked: "
            "every file of these types will be refused.",
            hint="Use the image, PDF, text and audio types the filetype library recognises.",
            id="attachments.W001",
        )
    ]
