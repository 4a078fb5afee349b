def test_login_page_renders(client, db):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b"Log in" in response.content


def test_owner_sees_shell(owner_client):
    response = owner_client.get("/")
    assert response.status_code == 200
    for label in [b"Images", b"ISO images", b"Recycle bin", b"VMs", b"Storages", b"Operation log"]:
        assert label in response.content
