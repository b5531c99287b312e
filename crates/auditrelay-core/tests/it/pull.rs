//! Pull-API entries (`GET /v3/audit-logs`): canonical bytes, the signed entry, verification.

use auditrelay_core::format::VerifyError;
use auditrelay_core::format::pull::{
    signed_pull_entries, verify_pull_entry, write_pull_entry, write_signed_pull_entry,
};
use auditrelay_core::{Event, SigningKey};

use crate::support::{access, authorization, key, org_authentication, portal_authentication};

#[track_caller]
fn check(event: Event, expected_signed: &str) {
    let mut signed = Vec::new();
    write_signed_pull_entry(&event, &key(), &mut signed);
    assert_eq!(String::from_utf8_lossy(&signed), expected_signed);

    // The canonical bytes are the signed entry minus its `signature` member.
    let mut canonical = Vec::new();
    write_pull_entry(&event, &mut canonical);
    let text = String::from_utf8(canonical).unwrap();
    let start = expected_signed.find(",\"signature\":").unwrap();
    let end = start + ",\"signature\":\"\"".len() + 86;
    assert_eq!(
        text,
        format!("{}{}", &expected_signed[..start], &expected_signed[end..])
    );

    let keys = [
        SigningKey::from_seed(&[3; 32]).public_key().clone(),
        key().public_key().clone(),
    ];
    assert_eq!(verify_pull_entry(&signed, &keys).as_ref(), Ok(key().kid()));

    // A client that re-serializes the entry (pretty, other key order) still verifies it.
    let value: serde_json::Value = serde_json::from_slice(&signed).unwrap();
    let mut members: Vec<_> = value.as_object().unwrap().iter().collect();
    members.reverse();
    let reordered = format!(
        "{{ {} }}",
        members
            .iter()
            .map(|(k, v)| format!("{}: {v}", serde_json::Value::from(k.as_str())))
            .collect::<Vec<_>>()
            .join(",\n ")
    );
    assert_eq!(
        verify_pull_entry(reordered.as_bytes(), &keys).as_ref(),
        Ok(key().kid())
    );

    // Changing, adding or removing a field breaks it.
    let mut object = value.as_object().unwrap().clone();
    object.insert("ts".into(), "2025-06-23T14:28:47.557Z".into());
    let changed = serde_json::to_vec(&object).unwrap();
    assert_eq!(
        verify_pull_entry(&changed, &keys),
        Err(VerifyError::NoKeyMatches)
    );
    let mut object = value.as_object().unwrap().clone();
    object.insert("extra".into(), true.into());
    let added = serde_json::to_vec(&object).unwrap();
    assert_eq!(
        verify_pull_entry(&added, &keys),
        Err(VerifyError::NoKeyMatches)
    );
    let mut object = value.as_object().unwrap().clone();
    object.remove("signature");
    let unsigned = serde_json::to_vec(&object).unwrap();
    assert_eq!(
        verify_pull_entry(&unsigned, &keys),
        Err(VerifyError::NoSignature)
    );
    object.insert("signature".into(), "not base64!".into());
    let garbled = serde_json::to_vec(&object).unwrap();
    assert_eq!(
        verify_pull_entry(&garbled, &keys),
        Err(VerifyError::BadBase64)
    );
    assert!(matches!(
        verify_pull_entry(b"[1]", &keys),
        Err(VerifyError::Unparsable(_))
    ));
    // A forged value before the signed one: a reader keeping the first would see it.
    let forged = format!(
        "{{\"ts\":\"2020-01-01T00:00:00.000Z\",{}",
        &String::from_utf8(signed.clone()).unwrap()[1..]
    );
    assert!(matches!(
        verify_pull_entry(forged.as_bytes(), &keys),
        Err(VerifyError::Unparsable(_))
    ));
}

#[test]
fn authentication_entries() {
    // No principal_id, user_agent or portal_id: absent fields are left out, not emptied.
    check(
        org_authentication(),
        r#"{"authentication_type":"pat","client_ip":"172.71.232.22","org_id":"998db3e4-5cb7-4dd5-b51c-9878096a6999","outcome":"token_expired","signature":"Gdv6YIyTYr02XO-ws9prY8v7yXWFWdk6vs4dy2UUdXEpVsCtOi7tAjquttFxFRU7GyASeh0hpc7NTfDw73ZiBQ","successful":false,"trace_id":"3360194145499877252","ts":"2025-06-23T14:28:47.556Z","type":"authentication","uri":"/api/v1/personal-access-tokens/introspect"}"#,
    );
    check(
        portal_authentication(),
        r#"{"authentication_type":"basic","client_ip":"172.71.232.22","org_id":"998db3e4-5cb7-4dd5-b51c-9878096a6999","outcome":"success","portal_id":"3e551b39-227d-4297-b911-e68fd5d77c17","principal_id":"a3d2699a-0ed3-4417-bb10-d8e74a1513a4","principal_name":"Ada Lovelace","signature":"MRP_GqiY3lBbpYZnyvpPawuPfHs_jjfSzUKxlEvU8uBX1rY_2YliZnQga6buZe-YBRrX1ckbF1sHxkuxZsILBA","successful":true,"trace_id":"3360194145499877252","ts":"2025-06-23T14:28:47.556Z","type":"authentication","uri":"/api/v2/developer/authenticate","user_agent":"Mozilla/5.0 (X11; Linux x86_64)"}"#,
    );
}

#[test]
fn authorization_entry() {
    check(
        authorization(),
        r#"{"action":"edit","actor_id":"user_abcdef1234567890","client_ip":"172.71.232.22","granted":false,"kong_initiated":true,"org_id":"998db3e4-5cb7-4dd5-b51c-9878096a6999","principal_id":"a3d2699a-0ed3-4417-bb10-d8e74a1513a4","principal_name":"Ops \"bot\"\\svc\nline=2|x","resource":"control-planes/7f3c|a=b","service":"konnect","signature":"gpgcpQRhPFuNR5q5QvM6EuF3tcmW7iMWWrgX1GDq5W_HGnUjbEuBGTSY_qjS9kS3uTPVBf_4LGOwsotY8-AuBw","ts":"2025-06-23T14:28:47.556Z","type":"authorization","user_agent":"grpc-node-js/1.12.4"}"#,
    );
}

#[test]
fn gateway_access_entry() {
    check(
        access(),
        r#"{"kong_initiated":false,"method":"POST","org_id":"998db3e4-5cb7-4dd5-b51c-9878096a6999","principal_id":"a3d2699a-0ed3-4417-bb10-d8e74a1513a4","query":"{\"end\":\"1684270800\",\"start\":\"1684098000\"}","signature":"s8JiVfuZgwPv0EwTla0b9EOdsnziik-oP3A9CKg0HRJidbLmU_jkknwMCS-5ECd2dv6enTkckhLIMXCMLypCAA","status_code":503,"trace_id":"3360194145499877252","ts":"2025-06-23T14:28:47.556Z","type":"gateway_access","uri":"/konnect-api/api/control_planes/1c026712/services","user_agent":"grpc-node/1.24.11 grpc-c/8.0.0 (linux; chttp2; ganges)"}"#,
    );
}

/// A page's entries signed together are the entries signed one by one.
#[test]
fn entries_signed_together_are_the_entries_signed_alone() {
    let events = [
        org_authentication(),
        portal_authentication(),
        authorization(),
        access(),
    ];
    let together = signed_pull_entries(&events, &key());
    assert_eq!(together.len(), events.len());
    for (event, entry) in events.iter().zip(&together) {
        let mut alone = Vec::new();
        write_signed_pull_entry(event, &key(), &mut alone);
        assert_eq!(
            String::from_utf8_lossy(entry),
            String::from_utf8_lossy(&alone)
        );
    }
}
