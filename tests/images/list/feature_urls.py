"""URL confs for test_optional_actions: the project's, with and without the URL patterns of parts built
on their own (a download link, VM creation), whatever this branch has of them."""

from django.http import HttpResponse
from django.urls import URLResolver, include, path

from imageconsole import urls as project_urls


def stub(request, **kwargs):
    return HttpResponse("stub")


OPTIONAL = {"images": [("<uuid:pk>/download/", "download")], "compute": [("new/", "create")]}


def patterns(*, with_features: bool):
    result = []
    for entry in project_urls.urlpatterns:
        namespace = getattr(entry, "namespace", None)
        if isinstance(entry, URLResolver) and namespace in OPTIONAL:
            names = {name for _route, name in OPTIONAL[namespace]}
            kept = [p for p in entry.url_patterns if getattr(p, "name", None) not in names]
            if with_features:
                kept += [path(route, stub, name=name) for route, name in OPTIONAL[namespace]]
            result.append(path(str(entry.pattern), include((kept, namespace))))
        else:
            result.append(entry)
    return result
