import os

from django.core.wsgi import get_wsgi_application

from imageconsole.core.memory import freeze_startup_objects, limit_malloc_arenas

limit_malloc_arenas()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageconsole.settings")
application = get_wsgi_application()
freeze_startup_objects()
