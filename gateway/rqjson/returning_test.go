package rqjson

import "testing"

func TestHasReturning(t *testing.T) {
	tests := []struct {
		sql  string
		want bool
	}{
		// API.md 1.4 RETURNING: an execute with RETURNING is query-shaped.
		{"INSERT INTO foo(name) VALUES('declan') RETURNING *", true},
		{"insert into foo(name) values('x') returning id, name", true},
		{"UPDATE foo SET a=1 ReTuRnInG a", true},
		{"DELETE FROM foo RETURNING\nid", true},
		{"DELETE FROM foo\tRETURNING(id)", true},
		{"INSERT INTO t VALUES(1)RETURNING*", true},
		{"INSERT INTO t VALUES('a')RETURNING id", true},
		{"INSERT INTO t VALUES(1) /* c */ RETURNING id", true},
		{"INSERT INTO t VALUES(1) -- c\nRETURNING id", true},
		{"INSERT INTO [t] VALUES(1) RETURNING id", true},
		{`INSERT INTO "t" VALUES(1) RETURNING id`, true},
		{"INSERT INTO `t` VALUES(1) RETURNING id", true},
		{"INSERT INTO t VALUES('it''s') RETURNING id", true},
		{"INSERT INTO t VALUES(x'00') RETURNING id", true},
		{"SELECT 1; INSERT INTO t VALUES(1) RETURNING id", true},

		{"", false},
		{"SELECT * FROM foo", false},
		{"INSERT INTO t VALUES(1)", false},
		// Identifiers that merely contain the word.
		{"INSERT INTO foo(returning_x) VALUES(1)", false},
		{"SELECT xreturning FROM t", false},
		{"SELECT returning1 FROM t", false},
		{"SELECT $returning", false},
		{"SELECT returning$ FROM t", false},
		{"SELECT éreturning FROM t", false},
		// Inside literals and quoted identifiers.
		{"INSERT INTO t VALUES('RETURNING')", false},
		{"INSERT INTO t VALUES('a '' RETURNING')", false},
		{`INSERT INTO t("returning") VALUES(1)`, false},
		{"INSERT INTO t(`returning`) VALUES(1)", false},
		{"INSERT INTO t([returning]) VALUES(1)", false},
		// Inside comments.
		{"INSERT INTO t VALUES(1) -- RETURNING id", false},
		{"INSERT INTO t VALUES(1) /* RETURNING id */", false},
		{"INSERT INTO t VALUES(1) /* RETURNING id", false},
		{"INSERT INTO t VALUES(1) /* a */ -- RETURNING\n", false},
		// Parameters and qualified names.
		{"INSERT INTO t VALUES(:returning)", false},
		{"INSERT INTO t VALUES(@returning)", false},
		{"SELECT t.returning FROM t", false},
		// Unterminated literals end the scan.
		{"INSERT INTO t VALUES('abc RETURNING", false},
		{"INSERT INTO t VALUES([abc RETURNING", false},
		// Operators that look like comments but are not.
		{"SELECT 1-2 RETURNING", true},
		{"SELECT 1/2 RETURNING", true},
	}
	for _, tt := range tests {
		if got := HasReturning(tt.sql); got != tt.want {
			t.Errorf("HasReturning(%q) = %v, want %v", tt.sql, got, tt.want)
		}
	}
}
