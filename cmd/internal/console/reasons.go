package console

import (
	"regexp"
	"strings"
)

// The reasons the sender writes into .reason files, and its error texts,
// are English; the Korean page shows the parts that are the sender's own
// words in Korean. What comes from elsewhere (a Go or system error, the
// remote's text, a file name) stays as it is.

// reasonPrefixes are the sender's reason texts that start a reason, with
// their Korean; the rest of the reason follows as it is.
var reasonPrefixes = []struct{ en, ko string }{
	{"rejected by the remote (400)", "상대 기관이 거부함 (400)"},
	{"remote unavailable (500)", "상대 기관이 처리할 수 없음 (500)"},
	{"invalid, not sent: ", "규격 위반, 보내지 않음: "},
	{"not a regular file: ", "일반 파일이 아님: "},
	{"timeout: no reply within ", "시간 초과: 응답 없음, 대기 "},
	{"conn_error: ", "연결 오류: "},
	{"bad_reply: ", "잘못된 응답: "},
	{"connect: ", "연결 실패: "},
	{"(no .reason file)", "(.reason 파일 없음)"},
	{"starting", "시작 중"},
}

// reasonSuffixes are texts the sender ends reasons with.
var reasonSuffixes = []struct{ en, ko string }{
	{"; never opened", "; 열지 않음"},
	{"; split it", "; 파일을 나누세요"},
}

var afterAttempts = regexp.MustCompile(` \(after (\d+) attempts\)$`)

// translateReason returns reason in lang ("en" or "ko"): for Korean, the
// sender's own words of it translated, the rest as it is.
func translateReason(reason, lang string) string {
	if lang != "ko" || reason == "" {
		return reason
	}
	var tail string
	if m := afterAttempts.FindStringSubmatchIndex(reason); m != nil {
		tail = " (" + reason[m[2]:m[3]] + "회 시도 후)"
		reason = reason[:m[0]]
	}
	for _, s := range reasonSuffixes {
		if r, ok := strings.CutSuffix(reason, s.en); ok {
			reason, tail = r, s.ko+tail
			break
		}
	}
	for _, p := range reasonPrefixes {
		if r, ok := strings.CutPrefix(reason, p.en); ok {
			reason = p.ko + r
			break
		}
	}
	return reason + tail
}
