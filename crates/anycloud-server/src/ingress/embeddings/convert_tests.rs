#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use anycloud_providers::openai::convert::{
    embeddings_request_to_wire, embeddings_response_from_wire,
};
use anycloud_providers::ProviderErrorKind;
use serde_json::{json, Value};

fn emb_wire(v: Value) -> EmbeddingsRequestWire {
    serde_json::from_value(v).unwrap()
}

#[test]
fn embeddings_request_both_ways() {
    let (r, b64) = embeddings_request_from_wire(emb_wire(
        json!({"model": "e", "input": ["a", "b"], "dimensions": 8, "user": "u"}),
    ))
    .unwrap();
    assert!(!b64);
    assert_eq!(
        r.inputs,
        vec![
            EmbeddingInput::Text("a".into()),
            EmbeddingInput::Text("b".into())
        ]
    );
    assert_eq!(r.dimensions, Some(8));
    let w = embeddings_request_to_wire(&r, "text-embedding-3-small").unwrap();
    let v = serde_json::to_value(&w).unwrap();
    assert_eq!(
        v,
        json!({"model": "text-embedding-3-small", "input": ["a", "b"],
        "encoding_format": "base64", "dimensions": 8, "user": "u"})
    );
    let (back, b64) = embeddings_request_from_wire(w).unwrap();
    assert!(b64);
    assert_eq!(back.inputs, r.inputs);

    let (one, _) = embeddings_request_from_wire(emb_wire(
        json!({"model": "e", "input": "x", "encoding_format": "float"}),
    ))
    .unwrap();
    assert_eq!(
        serde_json::to_value(embeddings_request_to_wire(&one, "t").unwrap()).unwrap()["input"],
        "x"
    );
    let (toks, b64) = embeddings_request_from_wire(emb_wire(
        json!({"model": "e", "input": [[1, 2], [3]], "encoding_format": "base64"}),
    ))
    .unwrap();
    assert!(b64);
    assert_eq!(
        toks.inputs,
        vec![
            EmbeddingInput::Tokens(vec![1, 2]),
            EmbeddingInput::Tokens(vec![3])
        ]
    );
    assert_eq!(
        serde_json::to_value(embeddings_request_to_wire(&toks, "t").unwrap()).unwrap()["input"],
        json!([[1, 2], [3]])
    );

    for bad in [json!([]), json!(""), json!(["a", ""]), json!([[]])] {
        let e = embeddings_request_from_wire(emb_wire(json!({"model": "e", "input": bad})))
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("input"), "{bad}");
    }
    let e = embeddings_request_from_wire(emb_wire(
        json!({"model": "e", "input": "x", "encoding_format": "int8"}),
    ))
    .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("encoding_format"));

    let mixed = EmbeddingsRequest {
        model: "e".into(),
        inputs: vec![
            EmbeddingInput::Text("a".into()),
            EmbeddingInput::Tokens(vec![1]),
        ],
        dimensions: None,
        user: None,
    };
    assert_eq!(
        embeddings_request_to_wire(&mixed, "t").unwrap_err().kind,
        ProviderErrorKind::Unsupported
    );
}

#[test]
fn embeddings_response_float_base64_and_order() {
    let v1 = vec![0.5f32, -1.25, 3.0e-7];
    let b64 = encode_f32_base64(&v1);
    let w: EmbeddingsResponseWire = serde_json::from_value(json!({"object": "list", "model": "m",
        "data": [{"object": "embedding", "index": 1, "embedding": [1.0, 2.0, 3.0]},
                 {"object": "embedding", "index": 0, "embedding": b64}],
        "usage": {"prompt_tokens": 5, "total_tokens": 5}}))
    .unwrap();
    let r = embeddings_response_from_wire(w).unwrap();
    assert_eq!(r.vectors, vec![v1.clone(), vec![1.0, 2.0, 3.0]]);
    assert_eq!(r.usage.input_tokens, 5);
    assert_eq!(r.model, "m");

    for base64 in [false, true] {
        let w = embeddings_response_to_wire(&r, "public-e", base64);
        let v = serde_json::to_value(&w).unwrap();
        assert_eq!(v["model"], "public-e");
        assert_eq!(v["data"][1]["index"], 1);
        assert_eq!(v["usage"], json!({"prompt_tokens": 5, "total_tokens": 5}));
        assert_eq!(v["data"][0]["embedding"].is_string(), base64);
        let back = embeddings_response_from_wire(w).unwrap();
        assert_eq!(back.vectors, r.vectors);
    }

    let bad = |data: Value| {
        let w: EmbeddingsResponseWire = serde_json::from_value(json!({"data": data})).unwrap();
        embeddings_response_from_wire(w).unwrap_err().kind
    };
    assert_eq!(
        bad(json!([{"index": 1, "embedding": [1.0]}])),
        ProviderErrorKind::Protocol
    );
    assert_eq!(
        bad(json!([{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}])),
        ProviderErrorKind::Protocol
    );
    assert_eq!(
        bad(json!([{"index": 0, "embedding": "AAA"}])),
        ProviderErrorKind::Protocol
    );
}
