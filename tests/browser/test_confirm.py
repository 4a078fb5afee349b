"""The console's confirmation dialog: each question is answered by its own buttons."""

import pytest
from playwright.sync_api import expect

from tenants import services
from tenants.models import Membership
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_question_asked_as_the_last_dialog_goes_away_is_answered_by_its_own_ok(browser_page, make_user):
    """Back, then at once Cancel again and Confirm (the cancel of an upload): Bootstrap hides the dialog
    before its backdrop has faded, and only then says the dialog is hidden. The second question must not
    take that late word for its own answer, or its Confirm does nothing."""
    tenant = services.tenant_create(name="acme")
    services.membership_add(tenant=tenant, user=make_user("importer"), role=Membership.Role.OWNER)
    page = browser_page
    page.goto("/images/")
    page.get_by_label("Username").fill("importer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("main-nav")).to_be_visible()

    # The second question comes the moment the first dialog is hidden, while its backdrop still fades:
    # the quickest a person's second click can be.
    page.evaluate(
        """() => {
          const dialog = document.getElementById("confirm-dialog");
          window.answers = [];
          consoleConfirm("Cancel the first?").then((yes) => answers.push(["first", yes]));
          new MutationObserver((changes, observer) => {
            if (dialog.style.display !== "none") return;
            observer.disconnect();
            consoleConfirm("Cancel the second?").then((yes) => answers.push(["second", yes]));
          }).observe(dialog, { attributes: true, attributeFilter: ["style"] });
        }"""
    )
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_contain_text("Cancel the first?")
    dialog.get_by_test_id("confirm-back").click()
    expect(dialog).to_contain_text("Cancel the second?")
    dialog.get_by_test_id("confirm-ok").click()
    expect(dialog).to_be_hidden()
    page.wait_for_function("() => window.answers.length === 2")
    assert page.evaluate("window.answers") == [["first", False], ["second", True]]
