BEGIN TRANSACTION;
CREATE TABLE dtmf_digits (
	id INTEGER NOT NULL, 
	recording_id VARCHAR(64) NOT NULL, 
	label VARCHAR, 
	digit VARCHAR NOT NULL, 
	at_s FLOAT NOT NULL, 
	duration_ms INTEGER, 
	PRIMARY KEY (id), 
	FOREIGN KEY(recording_id) REFERENCES recordings (id) ON DELETE CASCADE
);
CREATE TABLE ledger (
	seq INTEGER NOT NULL, 
	ts DATETIME NOT NULL, 
	actor VARCHAR NOT NULL, 
	action VARCHAR NOT NULL, 
	subject VARCHAR NOT NULL, 
	details TEXT NOT NULL, 
	prev_hash VARCHAR(64) NOT NULL, 
	hash VARCHAR(64) NOT NULL, 
	PRIMARY KEY (seq), 
	UNIQUE (hash)
);
INSERT INTO "ledger" VALUES(1,'2026-12-01 21:37:38.569732','test','web.user_added','user:alice','{"four_eyes":false,"role":"admin","totp":false}','0000000000000000000000000000000000000000000000000000000000000000','17a5b6c6a1f9dbf9915084a446e0c37083c1cb7334fc153c08149817e51473db');
INSERT INTO "ledger" VALUES(2,'2026-12-01 21:37:38.787639','test','web.user_added','user:adam','{"four_eyes":false,"role":"admin","totp":false}','17a5b6c6a1f9dbf9915084a446e0c37083c1cb7334fc153c08149817e51473db','29b6806bbbfd2134fbf793ec8741979ee4df360514ce6a9de4267922d20212df');
INSERT INTO "ledger" VALUES(3,'2026-12-01 21:37:39.005797','test','web.user_added','user:bob','{"four_eyes":false,"role":"standard","totp":false}','29b6806bbbfd2134fbf793ec8741979ee4df360514ce6a9de4267922d20212df','425a2a53458c465fe9ca0490681b48429167c3b04ce34552814e8384bd9b8082');
INSERT INTO "ledger" VALUES(4,'2026-12-01 21:37:39.363187','test','web.user_added','user:carol','{"four_eyes":false,"role":"standard","totp":false}','425a2a53458c465fe9ca0490681b48429167c3b04ce34552814e8384bd9b8082','98ecaba92b6cb73871c5c1baf2680e35d9e5ad24fe4efc811451c59788c61a2c');
INSERT INTO "ledger" VALUES(5,'2026-12-01 21:37:39.667100','test','web.user_added','user:audrey','{"four_eyes":false,"role":"auditor","totp":false}','98ecaba92b6cb73871c5c1baf2680e35d9e5ad24fe4efc811451c59788c61a2c','b6e144b625822995612de0c650df4d286533173e179e4ee5c194515326f3cc01');
INSERT INTO "ledger" VALUES(6,'2026-12-01 21:37:39.704659','system','recording.started','ccda04125a6d46cc8699735796d03f10','{"call_id":"call-1793610000.0-+32470000001","direction":"out","other_number":"+32478999999","recorded_number":"+32470000001","start":"2026-11-02T09:00:00Z"}','b6e144b625822995612de0c650df4d286533173e179e4ee5c194515326f3cc01','8c8d4e21835fd1527c991bf9703ddf1e08454a995b689eb8b3f971801af8efc9');
INSERT INTO "ledger" VALUES(7,'2026-12-01 21:37:39.755033','system','recording.finished','ccda04125a6d46cc8699735796d03f10','{"duration_s":3.0,"end":"2026-11-02T09:00:03Z","file":"32470000001/2026/11/02/20261102T090000Z_out_32478999999_ccda04125a6d46cc8699735796d03f10.mp3","reason":null,"sha256":"e59ac47e7e58bb84cc9f45792fe899a309a771cf952dd2b1d87e6fa37597c9bd","size_bytes":12960,"state":"complete"}','8c8d4e21835fd1527c991bf9703ddf1e08454a995b689eb8b3f971801af8efc9','7214a77464a178df02e627818d8d9bd70fcd8c04b7d9b2451888f4f6e0e0584c');
INSERT INTO "ledger" VALUES(8,'2026-12-01 21:37:39.768930','system','recording.started','b78c1e14e68b456c94bee34209bb45a3','{"call_id":"call-1793617200.0-+32470000001","direction":"in","other_number":"+3225550000","recorded_number":"+32470000001","start":"2026-11-02T11:00:00Z"}','7214a77464a178df02e627818d8d9bd70fcd8c04b7d9b2451888f4f6e0e0584c','0f08db96d022786e0c2821d14f51f64653670a1d393451bc07a9bf13d9c3cf87');
INSERT INTO "ledger" VALUES(9,'2026-12-01 21:37:39.816827','system','recording.finished','b78c1e14e68b456c94bee34209bb45a3','{"duration_s":12.0,"end":"2026-11-02T11:00:12Z","file":"32470000001/2026/11/02/20261102T110000Z_in_3225550000_b78c1e14e68b456c94bee34209bb45a3.mp3","reason":null,"sha256":"c217c2faa45f0fe51bdfc42fc22d1447a8cdaa949e37a6d122f52ad623f3f523","size_bytes":48960,"state":"complete"}','0f08db96d022786e0c2821d14f51f64653670a1d393451bc07a9bf13d9c3cf87','0207443dc7bcef8fddb9b99461134eb4a60e7642433d1808a715543af2c75b2a');
INSERT INTO "ledger" VALUES(10,'2026-12-01 21:37:39.842683','system','recording.started','47c71008d0ff4f04bede45575d8089ca','{"call_id":"call-1793613600.0-+32470000002","direction":"out","other_number":"+32478999999","recorded_number":"+32470000002","start":"2026-11-02T10:00:00Z"}','0207443dc7bcef8fddb9b99461134eb4a60e7642433d1808a715543af2c75b2a','03ccc5dd373801305aad589c354954d4754383a97f309fc3ec4a41c727b0bd20');
INSERT INTO "ledger" VALUES(11,'2026-12-01 21:37:39.870210','system','recording.finished','47c71008d0ff4f04bede45575d8089ca','{"duration_s":6.0,"end":"2026-11-02T10:00:06Z","file":"32470000002/2026/11/02/20261102T100000Z_out_32478999999_47c71008d0ff4f04bede45575d8089ca.mp3","reason":null,"sha256":"7bf6861ad1e49fa12afdb883b8dfcfd39858cc4202084e778f87c70f8848e0ff","size_bytes":25056,"state":"complete"}','03ccc5dd373801305aad589c354954d4754383a97f309fc3ec4a41c727b0bd20','d41ce0338ccb53da8020631cb04298cf1277ff3855926ef993832ffadb2bdb48');
INSERT INTO "ledger" VALUES(12,'2026-12-01 21:37:39.911154','fixture','policy.number.added','number:+32470000003','{"after":{"active":true,"beep":false,"managed":false,"mode":"professional","notify":false,"number":"+32470000003","self_service":false,"slots":[],"status":"manual","template":null,"user":null,"user_name":null},"before":null}','d41ce0338ccb53da8020631cb04298cf1277ff3855926ef993832ffadb2bdb48','4f5b3a31a653cb7f35f6703b5263acf373b27ed2532e831ca9fe6ee97bda0c96');
INSERT INTO "ledger" VALUES(13,'2026-12-01 21:37:39.943061','fixture','policy.number.changed','number:+32470000003','{"after":{"active":true,"beep":true,"managed":false,"mode":"professional","notify":false,"number":"+32470000003","self_service":false,"slots":[],"status":"manual","template":null,"user":null,"user_name":null},"before":{"active":true,"beep":false,"managed":false,"mode":"professional","notify":false,"number":"+32470000003","self_service":false,"slots":[],"status":"manual","template":null,"user":null,"user_name":null}}','4f5b3a31a653cb7f35f6703b5263acf373b27ed2532e831ca9fe6ee97bda0c96','6ac6ccb306285db2d0ec991201eafc44afe041a5213997ae1229d1942a894594');
INSERT INTO "ledger" VALUES(14,'2026-12-01 21:37:39.977409','alice','retention.raise','+32470000001','{"until":"2036-01-01"}','6ac6ccb306285db2d0ec991201eafc44afe041a5213997ae1229d1942a894594','5e67521fdb6a283cdd6737b75f9d3a21c68b5491bd79f16b4fc0da0a866bfb50');
CREATE TABLE ledger_head (
	id INTEGER NOT NULL, 
	seq INTEGER NOT NULL, 
	hash VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "ledger_head" VALUES(1,14,'5e67521fdb6a283cdd6737b75f9d3a21c68b5491bd79f16b4fc0da0a866bfb50');
CREATE TABLE policy_counters (
	name VARCHAR(64) NOT NULL, 
	value INTEGER NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO "policy_counters" VALUES('policy_version',2);
CREATE TABLE policy_notifications (
	id INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	number VARCHAR(32) NOT NULL, 
	payload TEXT NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at DATETIME NOT NULL, 
	last_error VARCHAR(500), 
	delivered_at DATETIME, 
	PRIMARY KEY (id)
);
CREATE TABLE policy_number_slots (
	id INTEGER NOT NULL, 
	number_id INTEGER NOT NULL, 
	position INTEGER NOT NULL, 
	spec VARCHAR(200) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(number_id) REFERENCES policy_numbers (id) ON DELETE CASCADE
);
CREATE TABLE policy_numbers (
	id INTEGER NOT NULL, 
	number VARCHAR(32) NOT NULL, 
	user_id INTEGER, 
	mode VARCHAR(16) NOT NULL, 
	managed BOOLEAN NOT NULL, 
	status VARCHAR(8) NOT NULL, 
	beep BOOLEAN NOT NULL, 
	notify BOOLEAN NOT NULL, 
	self_service BOOLEAN NOT NULL, 
	active BOOLEAN NOT NULL, 
	template_id INTEGER, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (number), 
	FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE SET NULL, 
	FOREIGN KEY(template_id) REFERENCES policy_templates (id) ON DELETE RESTRICT
);
INSERT INTO "policy_numbers" VALUES(1,'+32470000001',3,'professional',0,'manual',0,0,0,1,NULL,'2026-12-01 21:37:39.682923','2026-12-01 21:37:39.682932');
INSERT INTO "policy_numbers" VALUES(2,'+32470000002',4,'professional',0,'manual',0,0,0,1,NULL,'2026-12-01 21:37:39.682935','2026-12-01 21:37:39.682936');
INSERT INTO "policy_numbers" VALUES(3,'+32470000003',NULL,'professional',0,'manual',1,0,0,1,NULL,'2026-12-01 21:37:39.897034','2026-12-01 21:37:39.936575');
CREATE TABLE policy_template_slots (
	id INTEGER NOT NULL, 
	template_id INTEGER NOT NULL, 
	position INTEGER NOT NULL, 
	spec VARCHAR(200) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(template_id) REFERENCES policy_templates (id) ON DELETE CASCADE
);
CREATE TABLE policy_templates (
	id INTEGER NOT NULL, 
	name VARCHAR(100) NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name)
);
CREATE TABLE recording_participants (
	id INTEGER NOT NULL, 
	recording_id VARCHAR(64) NOT NULL, 
	participant_id VARCHAR, 
	aor VARCHAR, 
	name VARCHAR, 
	number VARCHAR, 
	role VARCHAR(16), 
	joined_at DATETIME, 
	left_at DATETIME, 
	PRIMARY KEY (id), 
	FOREIGN KEY(recording_id) REFERENCES recordings (id) ON DELETE CASCADE
);
INSERT INTO "recording_participants" VALUES(1,'ccda04125a6d46cc8699735796d03f10','a','sip:+32470000001@sbc;user=phone',NULL,'+32470000001','caller',NULL,NULL);
INSERT INTO "recording_participants" VALUES(2,'ccda04125a6d46cc8699735796d03f10','b','tel:+32478999999',NULL,'+32478999999','callee',NULL,NULL);
INSERT INTO "recording_participants" VALUES(3,'b78c1e14e68b456c94bee34209bb45a3','a','sip:+32470000001@sbc;user=phone',NULL,'+32470000001','callee',NULL,NULL);
INSERT INTO "recording_participants" VALUES(4,'b78c1e14e68b456c94bee34209bb45a3','b','tel:+3225550000',NULL,'+3225550000','caller',NULL,NULL);
INSERT INTO "recording_participants" VALUES(5,'47c71008d0ff4f04bede45575d8089ca','a','sip:+32470000002@sbc;user=phone',NULL,'+32470000002','caller',NULL,NULL);
INSERT INTO "recording_participants" VALUES(6,'47c71008d0ff4f04bede45575d8089ca','b','tel:+32478999999',NULL,'+32478999999','callee',NULL,NULL);
CREATE TABLE recording_streams (
	id INTEGER NOT NULL, 
	recording_id VARCHAR(64) NOT NULL, 
	label VARCHAR NOT NULL, 
	stream_id VARCHAR, 
	participant_id VARCHAR, 
	codec VARCHAR, 
	sample_rate INTEGER, 
	packets_expected INTEGER NOT NULL, 
	packets_received INTEGER NOT NULL, 
	packets_lost INTEGER NOT NULL, 
	packets_late INTEGER NOT NULL, 
	packets_duplicate INTEGER NOT NULL, 
	jitter_ms FLOAT, 
	longest_gap_ms FLOAT, 
	mos FLOAT, 
	srtp_auth_failures INTEGER NOT NULL, 
	first_packet_at DATETIME, 
	last_packet_at DATETIME, 
	status VARCHAR(32) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(recording_id) REFERENCES recordings (id) ON DELETE CASCADE
);
INSERT INTO "recording_streams" VALUES(1,'ccda04125a6d46cc8699735796d03f10','1',NULL,NULL,'PCMA',NULL,0,150,0,0,0,NULL,NULL,NULL,0,NULL,NULL,'ok');
INSERT INTO "recording_streams" VALUES(2,'ccda04125a6d46cc8699735796d03f10','2',NULL,NULL,'PCMA',NULL,0,150,0,0,0,NULL,NULL,NULL,0,NULL,NULL,'ok');
INSERT INTO "recording_streams" VALUES(3,'b78c1e14e68b456c94bee34209bb45a3','1',NULL,NULL,'PCMA',NULL,0,600,0,0,0,NULL,NULL,NULL,0,NULL,NULL,'ok');
INSERT INTO "recording_streams" VALUES(4,'b78c1e14e68b456c94bee34209bb45a3','2',NULL,NULL,'PCMA',NULL,0,600,0,0,0,NULL,NULL,NULL,0,NULL,NULL,'ok');
INSERT INTO "recording_streams" VALUES(5,'47c71008d0ff4f04bede45575d8089ca','1',NULL,NULL,'PCMA',NULL,0,300,0,0,0,NULL,NULL,NULL,0,NULL,NULL,'ok');
INSERT INTO "recording_streams" VALUES(6,'47c71008d0ff4f04bede45575d8089ca','2',NULL,NULL,'PCMA',NULL,0,300,0,0,0,NULL,NULL,NULL,0,NULL,NULL,'ok');
CREATE TABLE recordings (
	id VARCHAR(64) NOT NULL, 
	call_id VARCHAR NOT NULL, 
	siprec_session_id VARCHAR, 
	state VARCHAR(16) NOT NULL, 
	reason TEXT, 
	start DATETIME NOT NULL, 
	"end" DATETIME, 
	duration_s FLOAT, 
	direction VARCHAR(8) NOT NULL, 
	recorded_number VARCHAR, 
	other_number VARCHAR, 
	file VARCHAR, 
	sidecar VARCHAR, 
	sha256 VARCHAR(64), 
	size_bytes INTEGER, 
	codec VARCHAR, 
	sample_rate INTEGER, 
	channels INTEGER, 
	srtp BOOLEAN NOT NULL, 
	beep BOOLEAN NOT NULL, 
	source VARCHAR, 
	key_id VARCHAR(128), 
	retention_until DATETIME, 
	legal_hold BOOLEAN NOT NULL, 
	metadata_json JSON, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "recordings" VALUES('ccda04125a6d46cc8699735796d03f10','call-1793610000.0-+32470000001',NULL,'complete',NULL,'2026-11-02 09:00:00.000000','2026-11-02 09:00:03.000000',3.0,'out','+32470000001','+32478999999','32470000001/2026/11/02/20261102T090000Z_out_32478999999_ccda04125a6d46cc8699735796d03f10.mp3',NULL,'e59ac47e7e58bb84cc9f45792fe899a309a771cf952dd2b1d87e6fa37597c9bd',12960,'mp3',8000,1,0,0,NULL,NULL,NULL,0,'null','2026-12-01 21:37:39.694478');
INSERT INTO "recordings" VALUES('b78c1e14e68b456c94bee34209bb45a3','call-1793617200.0-+32470000001',NULL,'complete',NULL,'2026-11-02 11:00:00.000000','2026-11-02 11:00:12.000000',12.0,'in','+32470000001','+3225550000','32470000001/2026/11/02/20261102T110000Z_in_3225550000_b78c1e14e68b456c94bee34209bb45a3.mp3',NULL,'c217c2faa45f0fe51bdfc42fc22d1447a8cdaa949e37a6d122f52ad623f3f523',48960,'mp3',8000,1,0,0,NULL,NULL,NULL,0,'null','2026-12-01 21:37:39.760191');
INSERT INTO "recordings" VALUES('47c71008d0ff4f04bede45575d8089ca','call-1793613600.0-+32470000002',NULL,'complete',NULL,'2026-11-02 10:00:00.000000','2026-11-02 10:00:06.000000',6.0,'out','+32470000002','+32478999999','32470000002/2026/11/02/20261102T100000Z_out_32478999999_47c71008d0ff4f04bede45575d8089ca.mp3',NULL,'7bf6861ad1e49fa12afdb883b8dfcfd39858cc4202084e778f87c70f8848e0ff',25056,'mp3',8000,1,0,0,NULL,NULL,NULL,0,'null','2026-12-01 21:37:39.832027');
CREATE TABLE retention_rules (
	number VARCHAR(64) NOT NULL, 
	until DATETIME NOT NULL, 
	set_by VARCHAR(255) NOT NULL, 
	set_at DATETIME NOT NULL, 
	PRIMARY KEY (number)
);
INSERT INTO "retention_rules" VALUES('+32470000001','2036-01-01 00:00:00.000000','alice','2026-11-03 10:00:00.000000');
CREATE TABLE schema_version (
	version INTEGER NOT NULL, 
	description VARCHAR(255) NOT NULL, 
	applied_at DATETIME NOT NULL, 
	PRIMARY KEY (version)
);
INSERT INTO "schema_version" VALUES(1,'initial schema: all tables of Base.metadata','2026-12-01 21:37:38.263936');
INSERT INTO "schema_version" VALUES(2,'ledger_head: append lock and tail anchor of the ledger','2026-12-01 21:37:38.275027');
CREATE TABLE users (
	id INTEGER NOT NULL, 
	login VARCHAR(255) NOT NULL, 
	name VARCHAR(255), 
	role VARCHAR(16) NOT NULL, 
	password_hash VARCHAR(512), 
	must_change_password BOOLEAN NOT NULL, 
	active BOOLEAN NOT NULL, 
	failed_logins INTEGER NOT NULL, 
	locked_until DATETIME, 
	totp_secret VARCHAR(255), 
	four_eyes BOOLEAN NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (login)
);
INSERT INTO "users" VALUES(1,'alice','Alice','admin','$argon2id$v=19$m=65536,t=3,p=4$coN3PIm4cw64jyDl6YWiLw$ya2ULMwQ2mJMoYJECnKogRrkArmp/e99Z81vibAvmcM',0,1,0,NULL,NULL,0,'2026-12-01 21:37:38.561045');
INSERT INTO "users" VALUES(2,'adam','Adam','admin','$argon2id$v=19$m=65536,t=3,p=4$Yu0HhNk7X70lUZ02rjHTEw$N2bWS0fpSE3/npczjYlmtf9zFFNdAICUm3ZYTDjP1ig',0,1,0,NULL,NULL,0,'2026-12-01 21:37:38.782697');
INSERT INTO "users" VALUES(3,'bob','Bob','standard','$argon2id$v=19$m=65536,t=3,p=4$/+BoUklmNA6Z0AQItNOGzQ$DhANeddiOJw0ZMXJghm70bKkHEmpL6QcjA0yACP0F4k',0,1,0,NULL,NULL,0,'2026-12-01 21:37:38.997874');
INSERT INTO "users" VALUES(4,'carol','Carol','standard','$argon2id$v=19$m=65536,t=3,p=4$mAdqvBMLo+/guAsXGy644g$H/jopNbPwrRdhvnh3HluZ+TjG2C9YI+JHbrCIfGnJnQ',0,1,0,NULL,NULL,0,'2026-12-01 21:37:39.358704');
INSERT INTO "users" VALUES(5,'audrey','Audrey','auditor','$argon2id$v=19$m=65536,t=3,p=4$9r7mftZOU7gqSgSjS3GcXw$9SdgYxZaV0VQZBS1K3xpEL54Q3gGQXveM09hHSPyDIA',0,1,0,NULL,NULL,0,'2026-12-01 21:37:39.662268');
CREATE TABLE web_access_request_events (
	id INTEGER NOT NULL, 
	request_id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	actor VARCHAR(100) NOT NULL, 
	action VARCHAR(20) NOT NULL, 
	note TEXT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(request_id) REFERENCES web_access_requests (id)
);
CREATE TABLE web_access_requests (
	id INTEGER NOT NULL, 
	case_id INTEGER NOT NULL, 
	requester VARCHAR(100) NOT NULL, 
	reason TEXT NOT NULL, 
	rights VARCHAR(40) NOT NULL, 
	expires_at DATETIME NOT NULL, 
	status VARCHAR(10) NOT NULL, 
	decided_by VARCHAR(100), 
	decision_note TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	decided_at DATETIME, 
	PRIMARY KEY (id), 
	FOREIGN KEY(case_id) REFERENCES web_cases (id)
);
CREATE TABLE web_cases (
	id INTEGER NOT NULL, 
	title VARCHAR(200) NOT NULL, 
	description TEXT NOT NULL, 
	label_id INTEGER NOT NULL, 
	owner VARCHAR(100) NOT NULL, 
	list_access VARCHAR(10) NOT NULL, 
	play_access VARCHAR(10) NOT NULL, 
	label_access VARCHAR(10) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (label_id), 
	FOREIGN KEY(label_id) REFERENCES web_labels (id)
);
INSERT INTO "web_cases" VALUES(1,'Case 2026-17','',1,'alice','admins','admins','owner','2026-11-03 10:00:00.000000');
CREATE TABLE web_labels (
	id INTEGER NOT NULL, 
	title VARCHAR(80) NOT NULL, 
	colour VARCHAR(7) NOT NULL, 
	created_by VARCHAR(100) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (title)
);
INSERT INTO "web_labels" VALUES(1,'Case 2026-17','#aa3300','alice','2026-11-03 10:00:00.000000');
CREATE TABLE web_pending_logins (
	id INTEGER NOT NULL, 
	token_hash VARCHAR(64) NOT NULL, 
	login VARCHAR(100) NOT NULL, 
	created_at DATETIME NOT NULL, 
	used BOOLEAN NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (token_hash)
);
CREATE TABLE web_recording_labels (
	id INTEGER NOT NULL, 
	recording_id VARCHAR(64) NOT NULL, 
	label_id INTEGER NOT NULL, 
	added_by VARCHAR(100) NOT NULL, 
	added_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (recording_id, label_id), 
	FOREIGN KEY(label_id) REFERENCES web_labels (id)
);
INSERT INTO "web_recording_labels" VALUES(1,'ccda04125a6d46cc8699735796d03f10',1,'alice','2026-11-03 10:00:00.000000');
CREATE TABLE web_sessions (
	id INTEGER NOT NULL, 
	token_hash VARCHAR(64) NOT NULL, 
	login VARCHAR(100) NOT NULL, 
	csrf_token VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	last_seen DATETIME NOT NULL, 
	second_login VARCHAR(100), 
	ended BOOLEAN NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (token_hash)
);
CREATE INDEX ix_recordings_other_number ON recordings (other_number);
CREATE INDEX ix_recordings_call_id ON recordings (call_id);
CREATE INDEX ix_recordings_start ON recordings (start);
CREATE INDEX ix_recordings_state ON recordings (state);
CREATE INDEX ix_recordings_other_number_start ON recordings (other_number, start);
CREATE INDEX ix_recordings_recorded_number_start ON recordings (recorded_number, start);
CREATE INDEX ix_recordings_recorded_number ON recordings (recorded_number);
CREATE INDEX ix_ledger_subject ON ledger (subject);
CREATE INDEX ix_ledger_action ON ledger (action);
CREATE INDEX ix_web_sessions_login ON web_sessions (login);
CREATE INDEX ix_policy_notifications_due ON policy_notifications (delivered_at, next_attempt_at);
CREATE INDEX ix_recording_participants_number ON recording_participants (number);
CREATE INDEX ix_recording_participants_recording_id ON recording_participants (recording_id);
CREATE INDEX ix_recording_streams_recording_id ON recording_streams (recording_id);
CREATE INDEX ix_dtmf_digits_recording_id ON dtmf_digits (recording_id);
CREATE INDEX ix_web_recording_labels_recording_id ON web_recording_labels (recording_id);
CREATE INDEX ix_web_recording_labels_label_id ON web_recording_labels (label_id);
CREATE INDEX ix_policy_template_slots_template_id ON policy_template_slots (template_id);
CREATE INDEX ix_policy_numbers_user_id ON policy_numbers (user_id);
CREATE INDEX ix_policy_numbers_template_id ON policy_numbers (template_id);
CREATE INDEX ix_web_access_requests_case_id ON web_access_requests (case_id);
CREATE INDEX ix_web_access_requests_requester ON web_access_requests (requester);
CREATE INDEX ix_policy_number_slots_number_id ON policy_number_slots (number_id);
CREATE INDEX ix_web_access_request_events_request_id ON web_access_request_events (request_id);
COMMIT;
