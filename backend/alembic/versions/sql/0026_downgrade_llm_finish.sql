-- Finishes a pending ledger row (blocked, cached or failed); a finished row is never rewritten.
CREATE OR REPLACE FUNCTION llm_finish(p_call uuid, p_status text, p_blocked_reason text, p_failure_reason text,
                                      p_provider_attempted boolean, p_was_cached boolean, p_response jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE llm_api_calls
    SET status = p_status, blocked_reason = p_blocked_reason, failure_reason = p_failure_reason,
        provider_attempted = p_provider_attempted, was_cached = p_was_cached, response = p_response,
        finished_at = now()
    WHERE id = p_call AND status = 'pending';
END $$
