"""Adding a standalone (server) image storage in Django admin, in the steps of the product's dialog
(seed 003): basic information; server and credentials, where the console logs in (pinning the host key
and installing its own key) before the next step can be reached; disk configuration, with the free
disks the server lists over that login; advanced settings, after which the storage is created.

The steps keep what was entered in the session, so Back and Next lose nothing; the password is never
kept there or sent back to the page: only the tested login is (`services.ServerLogin`, its private key
and password encrypted). Each step is a GET of `?kind=server&step=<name>` and a POST to it that
redirects to the next step when the step is valid.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from . import services
from .backends import StorageError
from .backends.server import host_key_fingerprint
from .forms import SERVER_ADD_STEPS
from .models import ImageStorage

SESSION_KEY = "storage_server_add"
STEP_NAMES = [name for name, _title, _form in SERVER_ADD_STEPS]
FORMS = {name: form for name, _title, form in SERVER_ADD_STEPS}
# Never kept for Back: the password, and the confirmation that a disk is erased (given again each time).
NOT_KEPT = {"password", "confirm_erase"}


class ServerAddWizard:
    def __init__(self, model_admin, request):
        self.model_admin = model_admin
        self.request = request
        self.state = request.session.get(SESSION_KEY) or {"values": {}, "cleaned": {}}

    # Session state
    def save(self):
        self.request.session[SESSION_KEY] = self.state

    def reset(self):
        self.state = {"values": {}, "cleaned": {}}
        self.save()

    @property
    def login(self) -> services.ServerLogin | None:
        data = self.state.get("login")
        return services.ServerLogin.from_dict(data) if data else None

    def keep_values(self, step, form):
        self.state["values"][step] = {
            name: form.data.get(name, "") for name in form.fields if name not in NOT_KEPT
        }

    def first_incomplete(self) -> str:
        for name in STEP_NAMES:
            if name not in self.state["cleaned"]:
                return name
            if name == "server" and self.login is None:
                return name
        return STEP_NAMES[-1]

    def url(self, step: str) -> str:
        return reverse("admin:storage_imagestorage_add") + "?" + urlencode({"kind": "server", "step": step})

    # The view
    def dispatch(self):
        request = self.request
        step = request.GET.get("step")
        if step not in STEP_NAMES:
            if request.method == "POST":
                return redirect(self.url(STEP_NAMES[0]))
            self.reset()
            return self.render(STEP_NAMES[0], self.unbound(STEP_NAMES[0]))
        reachable = STEP_NAMES.index(step) <= STEP_NAMES.index(self.first_incomplete())
        if not reachable:
            return redirect(self.url(self.first_incomplete()))
        if request.method != "POST":
            return self.render(step, self.unbound(step))
        form = self.bound(step)
        if "wizard_back" in request.POST:
            self.keep_values(step, form)
            self.save()
            return redirect(self.url(STEP_NAMES[max(STEP_NAMES.index(step) - 1, 0)]))
        if form.is_valid():
            self.keep_values(step, form)
            self.step_done(step, form)
        if not form.is_valid():
            # What a later step would build on is what this page shows now, not what was valid before.
            self.state["cleaned"].pop(step, None)
            self.save()
            return self.render(step, form)
        self.state["cleaned"][step] = form.cleaned_data
        self.save()
        if step != STEP_NAMES[-1]:
            return redirect(self.url(STEP_NAMES[STEP_NAMES.index(step) + 1]))
        return self.create()

    def form_kwargs(self, step):
        if step != "disk":
            return {}
        return {"disks": self.state.get("disks") or []}

    def unbound(self, step):
        if step == "disk":
            self.list_disks()
        return FORMS[step](initial=self.state["values"].get(step) or None, **self.form_kwargs(step))

    def bound(self, step):
        return FORMS[step](self.request.POST, **self.form_kwargs(step))

    def list_disks(self):
        """The free disks, asked of the server each time step 3 is shown."""
        self.state["disks"] = []
        self.state["disk_error"] = ""
        try:
            self.state["disks"] = services.storage_server_free_disks(login=self.login)
        except StorageError as error:
            self.state["disk_error"] = str(error)
        self.save()

    def step_done(self, step, form):
        """What the console does with a valid step on the server; its errors go next to the fields."""
        data = form.cleaned_data
        try:
            if step == "server":
                previous = self.login
                login = services.storage_server_login(
                    name=self.state["cleaned"]["basic"]["name"],
                    host=data["host"],
                    ssh_port=data["ssh_port"],
                    ssh_username=data["ssh_username"],
                    password=data["password"],
                    previous=previous,
                )
                if previous is None or not previous.same_server(
                    host=login.host, ssh_port=login.ssh_port, ssh_username=login.ssh_username
                ):
                    # Another server: its disks are other disks.
                    self.state["cleaned"].pop("disk", None)
                    self.state["values"].get("disk", {}).pop("disk", None)
                self.state["login"] = login.as_dict()
                data.pop("password")
            elif step == "disk":
                services.storage_server_check_mount_path(login=self.login, mount_path=data["mount_path"])
        except ValidationError as error:
            apply_errors(form, error)

    def create(self):
        request = self.request
        data = {}
        for name in STEP_NAMES:
            data.update(self.state["cleaned"][name])
        data.pop("confirm_erase", None)
        retrieve = data.pop("retrieve_existing", False)
        login = self.login
        try:
            storage = services.storage_create(
                kind=ImageStorage.Kind.SERVER, login=login, actor=request.user, request=request, **data
            )
        except ValidationError as error:
            return self.show_error(error)
        self.request.session.pop(SESSION_KEY, None)
        self.model_admin.message_user(
            request,
            _("Storage “%(name)s” was added: %(state)s. %(reason)s")
            % {"name": storage.name, "state": storage.get_state_display(), "reason": storage.state_reason},
            messages.SUCCESS if storage.state == ImageStorage.State.CONNECTED else messages.WARNING,
        )
        if retrieve:
            try:
                return redirect(reverse("admin:storage_imagestorage_retrieve", args=[storage.pk]))
            except NoReverseMatch:
                pass
        return redirect(reverse("admin:storage_imagestorage_change", args=[storage.pk]))

    def show_error(self, error: ValidationError):
        """Creating failed (the server went away, formatting or the write test failed): show the step the
        failing field belongs to, with the reason next to it."""
        fields = list(getattr(error, "error_dict", {}))
        step = next(
            (name for name in STEP_NAMES if any(field in FORMS[name].base_fields for field in fields)),
            STEP_NAMES[-1],
        )
        values = dict(self.state["values"].get(step) or {})
        if step == "disk":
            self.list_disks()
        form = FORMS[step](values, **self.form_kwargs(step))
        form.is_valid()
        apply_errors(form, error)
        return self.render(step, form)

    def render(self, step, form):
        index = STEP_NAMES.index(step)
        context = self.model_admin._context(
            self.request,
            None,
            _("Add %(kind)s image storage") % {"kind": ImageStorage.Kind.SERVER.label.lower()},
            form=form,
            step=step,
            action=self.url(step),
            steps=[
                {
                    "name": name,
                    "title": title,
                    "number": number,
                    "current": name == step,
                    "done": number <= index,
                }
                for number, (name, title, _form) in enumerate(SERVER_ADD_STEPS, start=1)
            ],
            step_title=SERVER_ADD_STEPS[index][1],
            step_number=index + 1,
            step_count=len(STEP_NAMES),
            is_first=index == 0,
            is_last=index == len(STEP_NAMES) - 1,
            login=self.login if step != "basic" else None,
            login_fingerprint=host_key_fingerprint(self.login.ssh_host_key) if self.login else "",
            disk_error=self.state.get("disk_error", "") if step == "disk" else "",
            review=self.review() if index == len(STEP_NAMES) - 1 else [],
        )
        return TemplateResponse(self.request, "admin/storage/imagestorage/server_wizard.html", context)

    def review(self):
        """What the earlier steps hold, shown on the last one before the storage is created."""
        cleaned = self.state["cleaned"]
        basic, server, disk = cleaned.get("basic", {}), cleaned.get("server", {}), cleaned.get("disk", {})
        method = ImageStorage.AdditionMethod(disk.get("addition_method") or "local_directory")
        where = disk.get("mount_path", "")
        if disk.get("disk"):
            where = _("%(disk)s, formatted and mounted at %(path)s") % {"disk": disk["disk"], "path": where}
        return [
            (_("Name"), basic.get("name", "")),
            (_("Data center"), basic.get("data_center", "")),
            (
                _("Storage server"),
                f"{server.get('ssh_username', '')}@{server.get('host', '')}:{server.get('ssh_port', '')}",
            ),
            (_("Addition method"), method.label),
            (_("Mount path"), where),
        ]


def apply_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)
