"""`{% image_row image %}`: a list row drawn by images.rows (see there why not by a template)."""

from django import template

from ..rows import render_row

register = template.Library()


@register.simple_tag(takes_context=True)
def image_row(context, image):
    return render_row(image, context)
