#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageconsole.settings")
    from django.core.management import execute_from_command_line

    from imageconsole.core.memory import limit_malloc_arenas

    limit_malloc_arenas()  # the RQ workers (`manage.py rqworker`) run imports

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
