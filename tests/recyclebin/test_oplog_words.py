"""Every change the recycle bin makes is in the operation log, and each entry reads in its reader's
language: the action's label and the message are worded when shown, not when a worker (in English) or a
user (in Chinese) wrote them."""

from datetime import timedelta

import pytest
from django.utils import timezone, translation

from images.models import Image
from images.services import image_delete
from recyclebin.services import (
    RestoreRefused,
    image_expire,
    image_expunge_run,
    image_restore,
    images_batch_expunge,
    images_batch_restore,
    policy_apply,
)
from tenants.models import OperationLog
from tenants.services import quota_update


def _entries(action):
    return list(OperationLog.objects.filter(action=action).order_by("pk"))


def _read(entry, language):
    with translation.override(language):
        return entry.action_label, entry.display_message


def test_every_change_is_logged_and_worded_for_each_reader(tenant, owner, make_image, set_policy, rq_redis):
    scope = Image.objects.filter(tenant=tenant)
    # Expiry (run by a worker) and the expunge that follows.
    expired = image_delete(image=make_image(tenant, name="old", size=5 * 1024**2), actor=owner)
    Image.objects.filter(pk=expired.pk).update(purge_after=timezone.now() - timedelta(seconds=1))
    assert image_expire(image_id=expired.pk) is True
    assert image_expunge_run(image_id=expired.pk) is True
    # Batch restore and batch destroy.
    a, b = (image_delete(image=make_image(tenant, name=n), actor=owner) for n in ("a", "b"))
    images_batch_restore(tenant=tenant, scope=scope, image_ids=[a.pk], actor=owner)
    images_batch_expunge(tenant=tenant, scope=scope, image_ids=[b.pk], actor=owner)
    # A restore the quota refuses, asked by a Chinese user.
    quota_update(tenant=tenant, max_images=1, max_bytes=None)
    c = image_delete(image=make_image(tenant, name="c"), actor=owner)
    with translation.override("zh-hans"), pytest.raises(RestoreRefused):
        image_restore(image=c, actor=owner)
    # A policy change.
    set_policy("delayed", days=1)
    policy_apply(tenant=None, actor=owner)

    expected = {
        "image.expire": (
            "Retention period ended",
            "The retention period ended on",
            "保留期结束",
            "保留期已于",
        ),
        "image.expunge": ("Destroy image", "Expunged: 5.0", "销毁镜像", "5.0"),
        "image.restore": ("Restore image", "Deleted → Available", "还原镜像", "已删除 → 可用"),
        "recyclebin.policy": (
            "Change deletion policy",
            "Delayed deletion, retention 1 days",
            "修改删除策略",
            "延迟删除",
        ),
    }
    for action, (label_en, message_en, label_zh, message_zh) in expected.items():
        entry = _entries(action)[0]
        assert _read(entry, "en")[0] == label_en
        assert message_en in _read(entry, "en")[1]
        assert _read(entry, "zh-hans")[0] == label_zh
        assert message_zh in _read(entry, "zh-hans")[1], _read(entry, "zh-hans")[1]

    started = [e for e in _entries("image.expunge") if e.result == "started"]
    assert [e.target_name for e in started] == ["b"]
    assert _read(started[0], "zh-hans")[1] == "已删除 → 删除中"
    refused = [e for e in _entries("image.restore") if e.result == "failure"]
    assert [e.target_name for e in refused] == ["c"]
    assert _read(refused[0], "en")[1] == "Refused by the image quota: 1 of 1 images exist."
    assert "配额" in _read(refused[0], "zh-hans")[1]
