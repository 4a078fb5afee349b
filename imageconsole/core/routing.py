"""Whether a named URL pattern exists, asked without reversing it.

Pages offer an action of a part of the product that may not be built (a VM made from an image, a
download link) only when its URL pattern is declared. Asking the resolver directly keeps that answer
apart from a failed `reverse()`: a reverse of a declared name that fails is a bug and raises.
"""

from django.urls import get_resolver


def url_name_exists(name: str) -> bool:
    """True when "namespace:...:name" names a URL pattern of the project."""
    *namespaces, leaf = name.split(":")
    resolver = get_resolver()
    for namespace in namespaces:
        if namespace not in resolver.namespace_dict:
            return False
        _prefix, resolver = resolver.namespace_dict[namespace]
    return leaf in resolver.reverse_dict
