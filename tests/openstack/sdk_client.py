"""openstacksdk as a user's script would use it, run in its own process by test_real_clients.py (the
SDK's package is named `openstack`, like this project's app, so it cannot be imported in the tests'
process). Logs in by password through the clouds.yaml named by OS_CLIENT_CONFIG_FILE / OS_CLOUD.

    sdk_client.py create NAME FILE      -> prints the image id
    sdk_client.py show ID               -> prints status and checksum as JSON
    sdk_client.py download ID OUT
    sdk_client.py web-download NAME URI -> prints the image id
    sdk_client.py delete ID
"""

import json
import sys

import openstack


def main(command, *args):
    conn = openstack.connect()
    if command == "create":
        name, filename = args
        image = conn.image.create_image(
            name=name, filename=filename, disk_format="qcow2", container_format="bare", wait=False
        )
        print(image.id)
    elif command == "show":
        image = conn.image.get_image(args[0])
        print(json.dumps({"status": image.status, "checksum": image.checksum, "size": image.size}))
    elif command == "download":
        image_id, output = args
        conn.image.download_image(conn.image.get_image(image_id), output=output)
    elif command == "web-download":
        name, uri = args
        image = conn.image.create_image(
            name=name, disk_format="qcow2", container_format="bare", allow_duplicates=True, wait=False
        )
        conn.image.import_image(image, method="web-download", uri=uri)
        print(image.id)
    elif command == "delete":
        conn.image.delete_image(args[0])
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(*sys.argv[1:])
