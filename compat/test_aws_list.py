"""ListSecrets (filters, negation, order, pagination, planned deletion) and BatchGetSecretValue.

The server is shared, so every listing is narrowed by a tag key or name prefix unique to the test,
and assertions are made only about this test's own secrets.
"""

from __future__ import annotations

import random
import string
import time
import uuid

from aws_helpers import assert_arn, expect_error, new_name


def names(resp_list) -> list[str]:
    return [s["Name"] for s in resp_list]


def list_all(sm, **kw) -> list[dict]:
    out, token = [], None
    while True:
        args = dict(kw)
        if token:
            args["NextToken"] = token
        r = sm.list_secrets(**args)
        out.extend(r["SecretList"])
        token = r.get("NextToken")
        if not token:
            return out


def uniq() -> str:
    return uuid.uuid4().hex[:10]


def letters(n: int = 12) -> str:
    """A random word of lowercase letters only (the `all` filter splits words at letter/digit changes)."""
    return "".join(random.choice(string.ascii_lowercase) for _ in range(n))


def test_list_entry_shape(sm):
    tag = "k" + uniq()
    name = new_name("ls")
    arn = sm.create_secret(Name=name, SecretString="x", Description="desc", KmsKeyId="alias/k",
                           Tags=[{"Key": tag, "Value": "v"}])["ARN"]
    entries = list_all(sm, Filters=[{"Key": "tag-key", "Values": [tag]}])
    assert names(entries) == [name]
    e = entries[0]
    assert e["ARN"] == arn
    assert e["Description"] == "desc"
    assert e["KmsKeyId"] == "alias/k"
    assert e["Tags"] == [{"Key": tag, "Value": "v"}]
    assert list(e["SecretVersionsToStages"].values()) == [["AWSCURRENT"]]
    assert "CreatedDate" in e and "LastChangedDate" in e
    # never the value
    assert "SecretString" not in e and "SecretBinary" not in e


def test_filter_name_prefix_case_sensitive(sm):
    p = "Lsn" + uniq()
    tag = "n" + uniq()
    made = [p + "/DatabaseSecret", p + "/databaseSecret", p + "/MyData", p + "/Data"]
    for n in made:
        sm.create_secret(Name=n, SecretString="x", Tags=[{"Key": tag, "Value": ""}])
    got = names(list_all(sm, Filters=[{"Key": "name", "Values": [p + "/Data"]}]))
    assert sorted(got) == sorted([p + "/DatabaseSecret", p + "/Data"])
    # the prefix is of the whole name, not of a word in it
    assert names(list_all(sm, Filters=[{"Key": "name", "Values": ["Data" + p]}])) == []
    # several values in one filter: any of them
    got = names(list_all(sm, Filters=[{"Key": "name", "Values": [p + "/My", p + "/data"]}]))
    assert sorted(got) == sorted([p + "/MyData", p + "/databaseSecret"])
    # negation: with another filter selecting this test's secrets
    got = names(list_all(sm, Filters=[{"Key": "tag-key", "Values": [tag]},
                                      {"Key": "name", "Values": ["!" + p + "/Data"]}]))
    assert sorted(got) == sorted([p + "/databaseSecret", p + "/MyData"])


def test_filter_description_not_case_sensitive(sm):
    p = "lsd" + uniq()
    word = "Zq" + letters()
    a = sm.create_secret(Name=new_name(p), SecretString="x", Description=f"{word} production database")["Name"]
    b = sm.create_secret(Name=new_name(p), SecretString="x", Description="something else")["Name"]
    got = names(list_all(sm, Filters=[{"Key": "description", "Values": [word.upper()]}]))
    assert got == [a]
    got = names(list_all(sm, Filters=[{"Key": "description", "Values": [word.lower() + " production"]}]))
    assert got == [a]
    # negation, narrowed to this test's secrets by name
    got = names(list_all(sm, Filters=[{"Key": "name", "Values": [p]},
                                      {"Key": "description", "Values": ["!" + word]}]))
    assert got == [b]


def test_filter_tag_key_and_value(sm):
    p = "lst" + uniq()
    k = "Tk" + uniq()
    v = "Tv" + uniq()
    a = sm.create_secret(Name=new_name(p), SecretString="x", Tags=[{"Key": k + "-env", "Value": v + "-prod"}])["Name"]
    b = sm.create_secret(Name=new_name(p), SecretString="x", Tags=[{"Key": k + "-team", "Value": v + "-dev"}])["Name"]
    c = sm.create_secret(Name=new_name(p), SecretString="x", Tags=[{"Key": "other", "Value": "other"}])["Name"]
    assert sorted(names(list_all(sm, Filters=[{"Key": "tag-key", "Values": [k]}]))) == sorted([a, b])
    assert names(list_all(sm, Filters=[{"Key": "tag-key", "Values": [k + "-env"]}])) == [a]
    # case-sensitive prefix
    assert names(list_all(sm, Filters=[{"Key": "tag-key", "Values": [k.lower()]}])) == []
    assert names(list_all(sm, Filters=[{"Key": "tag-value", "Values": [v + "-d"]}])) == [b]
    assert sorted(names(list_all(sm, Filters=[{"Key": "tag-value", "Values": [v]}]))) == sorted([a, b])
    assert names(list_all(sm, Filters=[{"Key": "tag-value", "Values": [v.upper()]}])) == []
    # two filters: both must match
    assert names(list_all(sm, Filters=[{"Key": "tag-key", "Values": [k]},
                                       {"Key": "tag-value", "Values": [v + "-prod"]}])) == [a]
    # negation
    got = names(list_all(sm, Filters=[{"Key": "name", "Values": [p]},
                                      {"Key": "tag-key", "Values": ["!" + k]}]))
    assert got == [c]


def test_filter_all(sm):
    p = "lsa" + uniq()
    w1, w2, w3 = "alpha" + letters(), "bravo" + letters(), "charlie" + letters()
    a = sm.create_secret(Name=new_name(p), SecretString="x", Description=f"about {w1} here")["Name"]
    b = sm.create_secret(Name=new_name(p), SecretString="x", Tags=[{"Key": "k", "Value": w2}])["Name"]
    c = sm.create_secret(Name=f"{p}/{w3}/x", SecretString="x")["Name"]
    assert names(list_all(sm, Filters=[{"Key": "all", "Values": [w1]}])) == [a]
    # not case-sensitive
    assert names(list_all(sm, Filters=[{"Key": "all", "Values": [w2.upper()]}])) == [b]
    assert names(list_all(sm, Filters=[{"Key": "all", "Values": [w3]}])) == [c]
    assert names(list_all(sm, Filters=[{"Key": "all", "Values": ["nomatch" + letters()]}])) == []


def test_filter_primary_region_and_owning_service(sm):
    p = "lsr" + uniq()
    a = sm.create_secret(Name=new_name(p), SecretString="x")["Name"]
    sm.replicate_secret_to_regions(SecretId=a, AddReplicaRegions=[{"Region": "eu-west-1"}])
    try:
        got = names(list_all(sm, Filters=[{"Key": "name", "Values": [p]},
                                          {"Key": "primary-region", "Values": ["us-east"]}]))
        assert a in got
        got = names(list_all(sm, Filters=[{"Key": "name", "Values": [p]},
                                          {"Key": "primary-region", "Values": ["eu-west-1"]}]))
        assert a not in got
        e = [s for s in list_all(sm, Filters=[{"Key": "name", "Values": [a]}]) if s["Name"] == a][0]
        assert e.get("PrimaryRegion") == "us-east-1"
    finally:
        sm.remove_regions_from_replication(SecretId=a, RemoveReplicaRegions=["eu-west-1"])
    # secrets made by a user are owned by no service
    got = names(list_all(sm, Filters=[{"Key": "name", "Values": [p]},
                                      {"Key": "owning-service", "Values": ["rds"]}]))
    assert got == []


def test_invalid_filter_key_rejected(sm):
    # botocore does not check enums; the service does
    expect_error(("ValidationException", "InvalidParameterException"), sm.list_secrets,
                 Filters=[{"Key": "colour", "Values": ["x"]}])


def test_sort_order(sm):
    p = "lso" + uniq()
    made = []
    for i in range(3):
        if i:
            time.sleep(1.1)
        made.append(sm.create_secret(Name=f"{p}/{i}", SecretString="x")["Name"])
    asc = names(list_all(sm, Filters=[{"Key": "name", "Values": [p]}], SortOrder="asc"))
    desc = names(list_all(sm, Filters=[{"Key": "name", "Values": [p]}], SortOrder="desc"))
    assert asc == made
    assert desc == list(reversed(made))


def test_pagination(sm):
    tag = "pg" + uniq()
    made = {sm.create_secret(Name=new_name("pg"), SecretString="x", Tags=[{"Key": tag, "Value": ""}])["Name"]
            for _ in range(7)}
    pages, token, seen = 0, None, []
    while True:
        kw = {"Filters": [{"Key": "tag-key", "Values": [tag]}], "MaxResults": 3}
        if token:
            kw["NextToken"] = token
        r = sm.list_secrets(**kw)
        assert len(r["SecretList"]) <= 3
        seen += names(r["SecretList"])
        pages += 1
        token = r.get("NextToken")
        if not token:
            break
        assert pages < 20
    assert pages >= 3
    assert sorted(seen) == sorted(made)  # every secret once
    # the paginator agrees
    pag = sm.get_paginator("list_secrets").paginate(Filters=[{"Key": "tag-key", "Values": [tag]}],
                                                    PaginationConfig={"PageSize": 2})
    assert sorted(n for page in pag for n in names(page["SecretList"])) == sorted(made)


def test_invalid_next_token(sm):
    expect_error("InvalidNextTokenException", sm.list_secrets, NextToken="definitely-not-a-token")


def test_max_results_out_of_range(sm):
    # botocore checks only the minimum; 101 reaches the service
    expect_error(("ValidationException", "InvalidParameterException"), sm.list_secrets, MaxResults=101)


def test_include_planned_deletion(sm):
    tag = "pd" + uniq()
    keep = sm.create_secret(Name=new_name("pd"), SecretString="x", Tags=[{"Key": tag, "Value": ""}])["Name"]
    gone = sm.create_secret(Name=new_name("pd"), SecretString="x", Tags=[{"Key": tag, "Value": ""}])["Name"]
    sm.delete_secret(SecretId=gone, RecoveryWindowInDays=7)
    flt = [{"Key": "tag-key", "Values": [tag]}]
    assert names(list_all(sm, Filters=flt)) == [keep]
    assert names(list_all(sm, Filters=flt, IncludePlannedDeletion=False)) == [keep]
    both = list_all(sm, Filters=flt, IncludePlannedDeletion=True)
    assert sorted(names(both)) == sorted([keep, gone])
    by = {s["Name"]: s for s in both}
    assert "DeletedDate" in by[gone] and "DeletedDate" not in by[keep]
    sm.restore_secret(SecretId=gone)
    assert sorted(names(list_all(sm, Filters=flt))) == sorted([keep, gone])


def test_force_deleted_not_listed(sm):
    tag = "fd" + uniq()
    n = sm.create_secret(Name=new_name("fd"), SecretString="x", Tags=[{"Key": tag, "Value": ""}])["Name"]
    sm.delete_secret(SecretId=n, ForceDeleteWithoutRecovery=True)
    assert list_all(sm, Filters=[{"Key": "tag-key", "Values": [tag]}], IncludePlannedDeletion=True) == []


# --- BatchGetSecretValue ---------------------------------------------------------------------------------

def test_batch_get_by_id_list(sm):
    a = new_name("bg")
    b = new_name("bg")
    arn_a = sm.create_secret(Name=a, SecretString="va")["ARN"]
    arn_b = sm.create_secret(Name=b, SecretBinary=b"\x00vb")["ARN"]
    missing = new_name("bgmissing")
    r = sm.batch_get_secret_value(SecretIdList=[a, arn_b, missing])
    vals = {v["Name"]: v for v in r["SecretValues"]}
    assert set(vals) == {a, b}
    assert vals[a]["SecretString"] == "va" and vals[a]["ARN"] == arn_a
    assert vals[a]["VersionStages"] == ["AWSCURRENT"]
    assert vals[a]["VersionId"] == sm.get_secret_value(SecretId=a)["VersionId"]
    assert vals[b]["SecretBinary"] == b"\x00vb" and vals[b]["ARN"] == arn_b
    assert_arn(vals[b]["ARN"], b)
    errs = r["Errors"]
    assert len(errs) == 1
    assert errs[0]["SecretId"] == missing
    assert errs[0]["ErrorCode"] == "ResourceNotFoundException"
    assert errs[0]["Message"]


def test_batch_get_by_filters_paginated(sm):
    tag = "bf" + uniq()
    made = {}
    for i in range(5):
        n = new_name("bf")
        sm.create_secret(Name=n, SecretString=f"value-{i}", Tags=[{"Key": tag, "Value": str(i)}])
        made[n] = f"value-{i}"
    other = sm.create_secret(Name=new_name("bf"), SecretString="other")["Name"]
    got, token, pages = {}, None, 0
    while True:
        kw = {"Filters": [{"Key": "tag-key", "Values": [tag]}], "MaxResults": 2}
        if token:
            kw["NextToken"] = token
        r = sm.batch_get_secret_value(**kw)
        assert len(r["SecretValues"]) <= 2
        for v in r["SecretValues"]:
            assert v["Name"] not in got
            got[v["Name"]] = v["SecretString"]
        assert not r.get("Errors")
        pages += 1
        token = r.get("NextToken")
        if not token:
            break
        assert pages < 20
    assert got == made
    assert other not in got
    assert pages >= 3


def test_batch_get_id_list_and_filters_together_rejected(sm):
    a = sm.create_secret(Name=new_name("bgx"), SecretString="x")["Name"]
    expect_error(("InvalidParameterException", "InvalidRequestException", "ValidationException"),
                 sm.batch_get_secret_value, SecretIdList=[a], Filters=[{"Key": "name", "Values": [a]}])


def test_batch_get_scheduled_for_deletion_is_an_error_entry(sm):
    a = sm.create_secret(Name=new_name("bgd"), SecretString="x")["Name"]
    b = sm.create_secret(Name=new_name("bgd"), SecretString="y")["Name"]
    sm.delete_secret(SecretId=b, RecoveryWindowInDays=7)
    r = sm.batch_get_secret_value(SecretIdList=[a, b])
    assert [v["Name"] for v in r["SecretValues"]] == [a]
    assert [e["SecretId"] for e in r["Errors"]] == [b]
    assert r["Errors"][0]["ErrorCode"] and r["Errors"][0]["Message"]
