from django.urls import re_path

from . import file, interop, members, schemas, views

UUID = r"(?P<image_id>[^/]+)"

urlpatterns = [
    re_path(r"^$", views.VersionsView.as_view(), name="openstack-image-versions"),
    re_path(r"^versions/?$", views.VersionsView.as_view(), name="openstack-image-versions-list"),
    re_path(r"^v2/images/?$", views.ImagesView.as_view(), name="openstack-images"),
    re_path(rf"^v2/images/{UUID}/?$", views.ImageView.as_view(), name="openstack-image"),
    re_path(rf"^v2/images/{UUID}/file$", file.ImageFileView.as_view(), name="openstack-image-file"),
    re_path(rf"^v2/images/{UUID}/tags/(?P<tag>[^/]+)$", views.TagView.as_view(), name="openstack-image-tag"),
    re_path(
        rf"^v2/images/{UUID}/actions/deactivate$",
        views.ActionView.as_view(action="deactivate"),
        name="openstack-image-deactivate",
    ),
    re_path(
        rf"^v2/images/{UUID}/actions/reactivate$",
        views.ActionView.as_view(action="reactivate"),
        name="openstack-image-reactivate",
    ),
    re_path(rf"^v2/images/{UUID}/members/?$", members.MembersView.as_view(), name="openstack-image-members"),
    re_path(
        rf"^v2/images/{UUID}/members/(?P<member_id>[^/]+)$",
        members.MemberView.as_view(),
        name="openstack-image-member",
    ),
    re_path(rf"^v2/images/{UUID}/stage$", interop.StageView.as_view(), name="openstack-image-stage"),
    re_path(rf"^v2/images/{UUID}/import$", interop.ImportView.as_view(), name="openstack-image-import"),
    re_path(rf"^v2/images/{UUID}/tasks$", interop.TasksView.as_view(), name="openstack-image-tasks"),
    re_path(r"^v2/info/import$", interop.ImportInfoView.as_view(), name="openstack-info-import"),
    re_path(r"^v2/info/stores$", interop.StoresInfoView.as_view(), name="openstack-info-stores"),
    *[
        re_path(
            rf"^v2/schemas/{name}/?$", schemas.SchemaView.as_view(name=name), name=f"openstack-schema-{name}"
        )
        for name in ("image", "images", "member", "members")
    ],
]
