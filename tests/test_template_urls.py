"""Every URL name a template of ours names exists, and a missing one is an error, not a hidden button.

Pages offer an action of a part built on its own (a VM from an image, a download link) when its URL
pattern is declared (`imageconsole.core.routing.url_name_exists`), never because a lookup failed.
"""

import re
from pathlib import Path

import pytest
from django.template import Context, Template
from django.test import RequestFactory
from django.urls import NoReverseMatch

from imageconsole.core.routing import url_name_exists

ROOT = Path(__file__).resolve().parent.parent
URL_TAG = re.compile(r"{%\s*url\s+['\"]([^'\"]+)['\"]")


def our_templates():
    for path in ROOT.rglob("templates/**/*.html"):
        if not {".venv", "node_modules", "staticfiles"} & set(path.relative_to(ROOT).parts):
            yield path


def test_every_url_name_in_our_templates_exists():
    missing = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in our_templates()
        for name in URL_TAG.findall(path.read_text())
        if not url_name_exists(name)
    ]
    assert missing == []


def test_url_as_variable_raises_in_tests_when_the_name_is_missing(tmp_path, settings):
    # The same tag Django would leave empty in a template of ours fails loudly under the test plugin.
    template_dir = ROOT / "templates"
    template = Template("{% url 'images:no-such-page' as target %}[{{ target }}]")
    template.origin.name = str(template_dir / "probe.html")
    for node in template.nodelist:
        node.origin = template.origin
    with pytest.raises(NoReverseMatch):
        template.render(Context({"request": RequestFactory().get("/")}))


def test_a_row_offers_an_optional_action_only_when_its_url_is_declared(settings):
    assert url_name_exists("images:detail")
    assert not url_name_exists("images:no-such-page")
    assert not url_name_exists("no-such-namespace:list")
